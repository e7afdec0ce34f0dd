"""A streaming client of OpenAI-compatible servers (vLLM, TGI, llama.cpp's server, Ollama,
SGLang, our worker): `POST /v1/completions` or `/v1/chat/completions` with `stream: true`, read
as server-sent events, each chunk's arrival taken on the driver's clock as it is read.

Tokens are counted two ways, and the response says which it kept: the server's
`usage.completion_tokens` from the last chunk (asked for with `stream_options.include_usage`),
or, where the server sends no usage, one token per chunk carrying text (servers stream a chunk
per token; one that packs several per chunk is then undercounted, and only `usage` fixes it).
The inter-token gaps are always those between chunks carrying text, as vLLM's `bench serve`
measures them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import numpy as np

from bench.load.generation import Prompt
from bench.load.sut import Response, TokenStream
from runners.remote import RemoteError

now = time.perf_counter
_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2.0)
_NAN = float("nan")
# A request whose item is plain text (a model's own samples) asks for this many.
_DEFAULT_MAX_TOKENS = 16
# What a runner sends before measuring: the server is up and generates.
WARM_UP_PROMPT = Prompt("The cat sat on the mat.", 7, 4)


class OpenAIClient:
    """Streams generations from OpenAI-compatible servers, each named by its base URL
    ("http://127.0.0.1:8000", without /v1)."""

    def __init__(
        self,
        model_name: str,
        api: str = "completions",
        ignore_eos: bool = True,
        connections: int = 1024,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.model_name = model_name
        self.chat = api == "chat"
        self.ignore_eos = ignore_eos
        self.connections = connections
        self.headers = headers or {}
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.connections, limit_per_host=0, keepalive_timeout=60
            ),
            # No overall deadline: the load driver times requests out itself.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            headers=self.headers,
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def ready(self, base: str) -> bool:
        """Whether `GET /v1/models` answers 200 (every OpenAI-compatible server has it)."""
        try:
            async with self.session.get(f"{base}/v1/models", timeout=_PROBE_TIMEOUT) as response:
                return response.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    def body(self, prompt: Prompt) -> dict[str, Any]:
        """The request for one prompt, streamed, asking for its output length."""
        body: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": prompt.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.chat:
            body["messages"] = [{"role": "user", "content": prompt.text}]
        else:
            body["prompt"] = prompt.text
        if self.ignore_eos:
            body["ignore_eos"] = True
        return body

    async def generate(self, base: str, samples: Sequence[Any]) -> Response:
        """Stream the generation of a request's one item (a `Prompt`, or plain text asking for
        a few tokens); RemoteError with the server's message where it refuses, or where the
        stream breaks off or carries an error."""
        if len(samples) != 1:
            raise RemoteError(
                f"a generative request carries one prompt, got {len(samples)}: set "
                "scenario.batch_size=1 (a server batches generations itself)"
            )
        prompt = _prompt(samples[0])
        path = "/v1/chat/completions" if self.chat else "/v1/completions"
        times: list[float] = []
        text: list[str] = []
        usage: dict[str, Any] | None = None
        finished = False
        async with self.session.post(f"{base}{path}", json=self.body(prompt)) as response:
            if response.status != 200:
                raise RemoteError(f"HTTP {response.status}: {_error(await response.read())}")
            async for line in response.content:
                if not line.startswith(b"data:"):
                    continue  # blank lines between events, comments, event names
                arrived = now()
                data = line[5:].strip()
                if data == b"[DONE]":
                    finished = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    raise RemoteError(f"the stream carried an error: {_error(data)}")
                piece = self._text(chunk)
                if piece:
                    times.append(arrived)
                    text.append(piece)
                if chunk.get("usage"):
                    usage = chunk["usage"]
        if not finished:
            raise RemoteError(f"the stream ended without data: [DONE] after {len(times)} chunks")
        stream = TokenStream(
            times=tuple(times),
            output_tokens=int(usage["completion_tokens"]) if usage else len(times),
            input_tokens=int(usage["prompt_tokens"]) if usage else prompt.input_tokens,
            counted_by="usage" if usage else "stream",
        )
        output = np.array(["".join(text)], dtype=object)
        return Response(output, _NAN, _NAN, tokens=stream)

    def _text(self, chunk: dict[str, Any]) -> str:
        choices = chunk.get("choices") or []
        if not choices:
            return ""  # the usage chunk
        if self.chat:
            return (choices[0].get("delta") or {}).get("content") or ""
        return choices[0].get("text") or ""


def _prompt(item: Any) -> Prompt:
    if isinstance(item, Prompt):
        return item
    if isinstance(item, str):
        return Prompt(item, len(item.split()), _DEFAULT_MAX_TOKENS)
    raise RemoteError(
        f"a generative request's item must be a prompt (text), got {type(item).__name__}"
    )


def _error(payload: bytes) -> str:
    """The server's error message (OpenAI's `{"error": {"message": ...}}`, or a bare
    `{"error": "..."}`), else the start of what it sent."""
    try:
        error = json.loads(payload)["error"]
        return str(error.get("message", error) if isinstance(error, dict) else error)
    except (ValueError, KeyError, TypeError, AttributeError):
        return payload[:200].decode("utf-8", "replace")
