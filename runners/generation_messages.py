"""What a generation engine is asked and answers, in plain types: what the worker's routes and
its request parsing need without importing the engine (and torch with it), so that a worker
serving no generative model never loads torch for them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: greedily at temperature 0, else sampled from the softmax
    at `temperature`, within the smallest set of tokens whose probability reaches `top_p`."""

    temperature: float = 0.0
    top_p: float = 1.0


@dataclass(frozen=True)
class GenerationRequest:
    """Token ids in; at most `max_tokens` out. The end-of-text token ends a sequence early
    unless `ignore_eos` (so that every request of a benchmark generates exactly max_tokens)."""

    prompt: tuple[int, ...]
    max_tokens: int
    sampling: Sampling = Sampling()
    ignore_eos: bool = False


@dataclass(frozen=True)
class Finished:
    """How a sequence ended: "length" (max_tokens or the context) or "stop" (end of text),
    its token counts, and its time waiting before its prefill began."""

    reason: str
    prompt_tokens: int
    completion_tokens: int
    queue_s: float


@dataclass(frozen=True)
class Token:
    """One generated token; `finished` is set on a sequence's last."""

    id: int
    finished: Finished | None = None


class GenerationError(RuntimeError):
    """The model failed while generating a sequence."""


class EngineStopped(RuntimeError):
    """A request to an engine that is stopping."""


@dataclass(frozen=True)
class Piece:
    """One generated token: its id, the text it adds to the completion and, on the last,
    how the sequence ended (its text then includes what earlier tokens held back)."""

    token: int
    text: str
    finished: Finished | None = None
