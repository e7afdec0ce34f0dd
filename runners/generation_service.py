"""Text in, text out, token by token: a generative model's tokenizer in front of the generation
engine. A request's prompt (or chat messages, through the tokenizer's chat template) becomes
token ids; each generated token comes back as the text it adds, decoded incrementally as TGI
and vLLM do (a token that completes no character yet adds "" and its text comes with a later
one), so the pieces join into exactly the decoded completion.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from runners.decode_batch import warm_up
from runners.generate_requests import BadRequest, TextRequest
from runners.generation import GenerationEngine
from runners.generation_messages import GenerationRequest, Piece


class IncrementalDecoder:
    """Decodes a growing list of token ids a token at a time, from a window of the last few
    tokens (decoding all of them each time would cost O(n) per token)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0  # the window's start
        self.read = 0  # the tokens before this one have given their text

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token: int) -> str:
        self.ids.append(token)
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        """What the last tokens hold that no token has given yet (an incomplete character)."""
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return after[len(before) :]


class GenerationService:
    """The tokenizer and the engine of one generative model, named `name`."""

    def __init__(self, name: str, tokenizer: Any, engine: GenerationEngine) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.engine = engine
        self.created = int(time.time())

    def prompt_ids(self, request: TextRequest) -> list[int]:
        """The request's prompt as token ids; BadRequest for what the model cannot take."""
        if request.messages is not None:
            if not getattr(self.tokenizer, "chat_template", None):
                raise BadRequest(
                    f"messages: model {self.name!r} has no chat template; "
                    "use /v1/completions with a prompt"
                )
            ids = self.tokenizer.apply_chat_template(
                request.messages, add_generation_prompt=True, tokenize=True
            )
            ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        elif isinstance(request.prompt, str):
            ids = self.tokenizer(request.prompt)["input_ids"]
        else:
            vocabulary = len(self.tokenizer)
            bad = [t for t in request.prompt if not 0 <= t < vocabulary]
            if bad:
                raise BadRequest(f"prompt: token ids {bad[:5]} are outside [0, {vocabulary})")
            ids = request.prompt
        return list(ids)

    def engine_request(self, request: TextRequest) -> GenerationRequest:
        """The engine's request, checked: BadRequest names the field it cannot serve."""
        ids = self.prompt_ids(request)
        room = self.engine.context_length - len(ids)
        max_tokens = room if request.max_tokens is None else request.max_tokens
        if max_tokens > room:
            raise BadRequest(
                f"max_tokens: {max_tokens} and the prompt's {len(ids)} tokens exceed the "
                f"model's context of {self.engine.context_length} tokens"
            )
        generation = GenerationRequest(
            tuple(ids), max_tokens, request.sampling, ignore_eos=request.ignore_eos
        )
        try:
            self.engine.check(generation)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return generation

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Piece]:
        """Each token as a `Piece` as soon as it is generated, the last one `finished`."""
        decoder = IncrementalDecoder(self.tokenizer)
        async for token in self.engine.generate(request):
            text = decoder.add(token.id)
            if token.finished is not None:
                text += decoder.flush()
            yield Piece(token.id, text, token.finished)

    def models_document(self) -> dict[str, Any]:
        """`GET /v1/models`."""
        return {
            "object": "list",
            "data": [
                {"id": self.name, "object": "model", "created": self.created, "owned_by": "bench"}
            ],
        }


async def start_generation(name: str, predictor: Any, settings: Any) -> GenerationService:
    """The generation service of a torch predictor of a generative model (its
    `language_model()`), batching as `settings` (`strategy.generation`) says, its engine
    started and warmed: first the model alone on every shape a compiled model builds a graph
    for (`warm_up`), then one generation through the engine."""
    from bench.models.causal_lm import context_length

    lm = predictor.language_model()
    tokenizer = predictor.bundle.tokenizer()
    engine = GenerationEngine(
        lm,
        str(settings.batching),
        settings.max_sequences,
        settings.max_batched_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        context_length=context_length(lm),
    )
    warm_up(lm, tokenizer("warm up")["input_ids"], tokenizer.pad_token_id)
    engine.start()
    service = GenerationService(name, tokenizer, engine)
    warm = GenerationRequest(tuple(tokenizer("warm up")["input_ids"]), 2, ignore_eos=True)
    async for _ in engine.generate(warm):
        pass
    engine.reset_counters()
    return service
