"""The generation requests the worker accepts, read from their JSON as documented, each fault
named by its field: OpenAI's `POST /v1/completions` and `/v1/chat/completions`, and Triton's
generate extension (`POST /v2/models/{name}/generate[_stream]`). Pure functions: a body in, a
`TextRequest` out, or a `BadRequest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runners.decode_batch import Sampling

# OpenAI's documented defaults: 16 tokens for a completion; temperature and top_p 1.
COMPLETION_MAX_TOKENS = 16


class BadRequest(ValueError):
    """A request that does not follow the protocol; the message names the field (HTTP 400)."""


@dataclass(frozen=True)
class TextRequest:
    """What to generate from: text (or token ids) or chat messages, as a protocol gave it;
    `max_tokens` None: up to the model's context."""

    model: str
    prompt: str | list[int] | None
    messages: list[dict[str, str]] | None
    max_tokens: int | None
    sampling: Sampling
    ignore_eos: bool
    stream: bool
    include_usage: bool


def _field(body: dict, name: str, kinds: tuple[type, ...], what: str, default: Any = None) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    # bool is an int in Python, never a number in JSON's sense here.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise BadRequest(f"{name}: must be {what}, got {json_type(value)}")
    return value


def json_type(value: Any) -> str:
    """The JSON name of a Python value's type, as the messages say it."""
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "an array", dict: "an object", type(None): "null"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


def _object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, got {json_type(body)}")
    return body


def _max_tokens(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"{name}: must be an integer, got {json_type(value)}")
    if value <= 0:
        raise BadRequest(f"{name}: must be >= 1, got {value}")
    return value


def _sampling(body: dict) -> Sampling:
    temperature = _field(body, "temperature", (int, float), "a number", 1.0)
    top_p = _field(body, "top_p", (int, float), "a number", 1.0)
    if not 0 <= temperature <= 2:
        raise BadRequest(f"temperature: must be between 0 and 2, got {temperature}")
    if not 0 < top_p <= 1:
        raise BadRequest(f"top_p: must be > 0 and <= 1, got {top_p}")
    return Sampling(float(temperature), float(top_p))


def _unsupported(body: dict) -> None:
    n = _field(body, "n", (int,), "an integer", 1)
    if n != 1:
        raise BadRequest(f"n: one choice per request is served, got {n}")
    if body.get("stop") not in (None, [], ""):
        raise BadRequest("stop: stop sequences are not supported; use max_tokens")


def _openai(body: Any, stream_default: bool = False) -> dict[str, Any]:
    body = _object(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest(f"model: required, a string; got {json_type(model)}")
    _unsupported(body)
    stream = _field(body, "stream", (bool,), "a boolean", stream_default)
    options = _field(body, "stream_options", (dict,), "an object", {})
    if options and not stream:
        raise BadRequest("stream_options: only allowed when stream is true")
    include_usage = _field(options, "include_usage", (bool,), "a boolean", False)
    return {
        "model": model,
        "sampling": _sampling(body),
        "ignore_eos": _field(body, "ignore_eos", (bool,), "a boolean", False),
        "stream": stream,
        "include_usage": include_usage,
    }


def completion_request(body: Any) -> TextRequest:
    """`POST /v1/completions`: one prompt, a string or token ids."""
    common = _openai(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, list):
        if not prompt or not all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            raise BadRequest(
                "prompt: must be a string or an array of token ids (integers); "
                "one prompt per request is served"
            )
    elif not isinstance(prompt, str):
        raise BadRequest(f"prompt: required, a string or token ids; got {json_type(prompt)}")
    if not prompt:
        raise BadRequest("prompt: must not be empty")
    max_tokens = _max_tokens(body.get("max_tokens", COMPLETION_MAX_TOKENS), "max_tokens")
    return TextRequest(prompt=prompt, messages=None, max_tokens=max_tokens, **common)


def chat_request(body: Any) -> TextRequest:
    """`POST /v1/chat/completions`: messages of a role and text content (a string, or an
    array of text parts)."""
    common = _openai(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest(f"messages: required, a non-empty array; got {json_type(messages)}")
    plain = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{i}]: must be an object, got {json_type(message)}")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not role:
            raise BadRequest(f"messages[{i}].role: required, a string; got {json_type(role)}")
        if isinstance(content, list):
            parts = [p.get("text") if isinstance(p, dict) else None for p in content]
            if not all(isinstance(text, str) for text in parts):
                raise BadRequest(f"messages[{i}].content: text parts only are served")
            content = "".join(parts)
        if not isinstance(content, str):
            raise BadRequest(
                f"messages[{i}].content: required, a string or text parts; got {json_type(content)}"
            )
        plain.append({"role": role, "content": content})
    # max_completion_tokens is the current name; max_tokens the deprecated one.
    name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    max_tokens = _max_tokens(body.get(name), name)
    return TextRequest(prompt=None, messages=plain, max_tokens=max_tokens, **common)


def triton_request(body: Any, model: str, stream: bool) -> TextRequest:
    """Triton's generate extension: `text_input`, and the generation settings as top-level
    fields or inside `parameters` (`max_tokens`, `temperature`, `top_p`, `ignore_eos`)."""
    body = _object(body)
    parameters = _field(body, "parameters", (dict,), "an object", {})
    settings = {**parameters, **{k: v for k, v in body.items() if k != "parameters"}}
    text = settings.get("text_input")
    if not isinstance(text, str) or not text:
        raise BadRequest(f"text_input: required, a non-empty string; got {json_type(text)}")
    max_tokens = _max_tokens(settings.get("max_tokens", COMPLETION_MAX_TOKENS), "max_tokens")
    return TextRequest(
        model=model,
        prompt=text,
        messages=None,
        max_tokens=max_tokens,
        sampling=_sampling(settings),
        ignore_eos=_field(settings, "ignore_eos", (bool,), "a boolean", False),
        stream=stream,
        include_usage=False,
    )
