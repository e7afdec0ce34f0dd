"""The documents the worker answers generation requests with, as the protocols document them:
OpenAI's completion and chat completion objects and their streamed chunks (server-sent events,
one chunk per generated token, the last one carrying `finish_reason`, then, where
`stream_options.include_usage` asked, a chunk of `usage` with no choices, then `[DONE]`), and
Triton's generate responses (`text_output`). Pure: pieces in, JSON-ready dicts out.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from runners.generation import Finished

DONE = b"data: [DONE]\n\n"


def event(document: dict[str, Any]) -> bytes:
    """One server-sent event carrying `document`."""
    return b"data: " + json.dumps(document, separators=(",", ":")).encode() + b"\n\n"


def usage(finished: Finished) -> dict[str, int]:
    return {
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
    }


class OpenAIAnswer:
    """The documents of one OpenAI request: `chat` or a plain completion."""

    def __init__(self, model: str, chat: bool, include_usage: bool) -> None:
        self.model = model
        self.chat = chat
        self.include_usage = include_usage
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def _envelope(self, kind: str, choices: list[dict], **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "choices": choices, **extra}  # fmt: skip

    def chunk(self, text: str, finished: Finished | None, first: bool) -> dict[str, Any]:
        """The streamed chunk of one token."""
        reason = None if finished is None else finished.reason
        if self.chat:
            delta = {"role": "assistant", "content": text} if first else {"content": text}
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
            kind = "chat.completion.chunk"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
            kind = "text_completion"
        extra = {"usage": None} if self.include_usage else {}
        return self._envelope(kind, [choice], **extra)

    def usage_chunk(self, finished: Finished) -> dict[str, Any]:
        """The chunk after the last token when usage was asked for: no choices."""
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return self._envelope(kind, [], usage=usage(finished))

    def whole(self, text: str, finished: Finished) -> dict[str, Any]:
        """The answer of a request that was not streamed."""
        if self.chat:
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "logprobs": None,
                      "finish_reason": finished.reason}  # fmt: skip
            return self._envelope("chat.completion", [choice], usage=usage(finished))
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finished.reason}
        return self._envelope("text_completion", [choice], usage=usage(finished))


def openai_error(message: str, status: int, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def triton_answer(model: str, version: str, text: str, finished: Finished | None) -> dict:
    """A Triton generate response (the whole text, or one streamed piece of it)."""
    document: dict[str, Any] = {"model_name": model, "model_version": version,
                                "text_output": text}  # fmt: skip
    if finished is not None:
        document["finish_reason"] = finished.reason
        document["usage"] = usage(finished)
    return document
