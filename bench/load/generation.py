"""Generative workloads: each request a prompt drawn from a text corpus, of an input length in
tokens, asking for an output length in tokens that the server must produce (`max_tokens`, with
the end-of-sequence token ignored, as vLLM's `bench serve`, AIPerf and GuideLLM send it), so
runs at the same lengths are comparable whatever the model would have said.

Lengths are fixed (stddev 0) or drawn per request from a normal distribution with the mean and
spread the scenario sets (rounded, at least 1), seeded by the payload seed, as AIPerf's
`--synthetic-input-tokens-mean/-stddev` and `--output-tokens-mean/-stddev`.

Input length needs a tokenizer. With the served model's (`strategy.tokenizer`, or the model's
own), a prompt is cut to exactly that many tokens; without one, it is that many words, and every
row says so (`input_tokens_counted_by`): a word is about 1.3 tokens of an English BPE
vocabulary, so the server sees longer prompts than asked. Where the server reports
`usage.prompt_tokens`, that count is the one recorded per request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bench.validation import ConfigError, at_least


@dataclass(frozen=True)
class Prompt:
    """One generative request's item: the prompt, its length as the harness counted it, and
    the output length asked for."""

    text: str
    input_tokens: int
    max_tokens: int


@dataclass(frozen=True)
class Lengths:
    """Input and output lengths in tokens: means, and spreads (0: every request the mean)."""

    input_tokens: int = 128
    input_tokens_stddev: float = 0.0
    output_tokens: int = 128
    output_tokens_stddev: float = 0.0

    def validate(self, at: str = "scenario") -> None:
        at_least(self.input_tokens, 1, f"{at}.input_tokens")
        at_least(self.output_tokens, 1, f"{at}.output_tokens")
        at_least(self.input_tokens_stddev, 0, f"{at}.input_tokens_stddev", unit=" (0: fixed)")
        at_least(self.output_tokens_stddev, 0, f"{at}.output_tokens_stddev", unit=" (0: fixed)")

    def draw(self, rng: np.random.Generator) -> tuple[int, int]:
        """One request's (input, output) lengths."""
        return (
            _draw(rng, self.input_tokens, self.input_tokens_stddev),
            _draw(rng, self.output_tokens, self.output_tokens_stddev),
        )


def _draw(rng: np.random.Generator, mean: int, stddev: float) -> int:
    if stddev == 0:
        return int(mean)
    return max(1, int(round(rng.normal(mean, stddev))))


class Tokenizer(Protocol):
    """What the workload needs of a tokenizer: text to ids and back (`tokenizers.Tokenizer`
    and transformers' tokenizers both fit, through `TokenCounter`)."""

    def encode(self, text: str, *args: Any, **kwargs: Any) -> Any: ...

    def decode(self, ids: Sequence[int], *args: Any, **kwargs: Any) -> str: ...


class TokenCounter:
    """Counts and cuts prompts in tokens of a tokenizer, or in words where there is none."""

    def __init__(self, tokenizer: Tokenizer | None = None, name: str = "") -> None:
        self.tokenizer = tokenizer
        # What every row says the input lengths were counted with.
        self.counted_by = f"tokenizer {name}".strip() if tokenizer is not None else "words"

    def ids(self, text: str) -> list[int] | list[str]:
        if self.tokenizer is None:
            return text.split()
        encoded = self.tokenizer.encode(text, add_special_tokens=False)
        return list(getattr(encoded, "ids", encoded))

    def text(self, ids: Sequence[Any]) -> str:
        if self.tokenizer is None:
            return " ".join(ids)
        return self.tokenizer.decode(list(ids))

    def count(self, text: str) -> int:
        return len(self.ids(text))


def load_tokenizer(path: str) -> TokenCounter:
    """The tokenizer in `path` (a `tokenizer.json`, or a folder holding one, as every Hugging
    Face model folder does), read with the `tokenizers` library: no download, no model.
    ConfigError naming `strategy.tokenizer` where there is none."""
    from tokenizers import Tokenizer as HfTokenizer

    found = Path(path).expanduser()
    file = found / "tokenizer.json" if found.is_dir() else found
    if not file.is_file():
        raise ConfigError(
            f"strategy.tokenizer: no tokenizer.json at {found} (give the served model's folder "
            "or its tokenizer.json; null counts prompts in words)"
        )
    try:
        tokenizer = HfTokenizer.from_file(str(file))
    except Exception as exc:
        raise ConfigError(f"strategy.tokenizer: {file} is not a tokenizer: {exc}") from None
    # A model's file may pad or truncate to its own input size; a prompt is counted whole.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return TokenCounter(tokenizer, found.name)


def prompt_supply(
    corpus: Sequence[str], counter: TokenCounter, lengths: Lengths, seed: int, salt: int = 0
) -> Callable[[int], list[Prompt]]:
    """Payload id -> a one-item payload: a prompt of sentences from `corpus` in a seeded order,
    cut to its drawn input length, and its drawn output length; the same id always gives the
    same prompt (a repeat, for a prefix or response cache), different ids different ones."""
    if not corpus:
        raise ValueError("corpus: need at least one sentence to draw prompts from")
    sizes = [max(1, counter.count(sentence)) for sentence in corpus]

    def make(payload_id: int) -> list[Prompt]:
        rng = np.random.default_rng([seed, salt, payload_id])
        input_tokens, max_tokens = lengths.draw(rng)
        order = rng.permutation(len(corpus))
        # Enough whole sentences, then cut to the length in tokens (or words).
        picked, total, turn = [], 0, 0
        while total < input_tokens:
            index = int(order[turn % len(order)])
            picked.append(corpus[index])
            total += sizes[index]
            turn += 1
        text = counter.text(counter.ids(" ".join(picked))[:input_tokens])
        return [Prompt(text, counter.count(text), max_tokens)]

    return make
