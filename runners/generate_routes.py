"""The worker's generation endpoints, behind its HTTP app:

    GET  /v1/models                                  OpenAI: the model, where it generates
    POST /v1/completions, /v1/chat/completions       OpenAI, streamed (`stream: true`) or not
    POST /v2/models/{name}[/versions/{v}]/generate   Triton's generate extension
    POST /v2/models/{name}[/versions/{v}]/generate_stream

A streamed answer is a `Stream` of server-sent events, each written to the socket as its token
is generated. Errors: 400 naming the field, 404 for a model not served (OpenAI: the `model`
field), 500 when the model fails (mid-stream: an error event, the status being sent already).
Each request is counted in the worker's Prometheus metrics as an inference request is.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runners.generate_requests import (
    BadRequest,
    TextRequest,
    chat_request,
    completion_request,
    triton_request,
)
from runners.generate_responses import DONE, OpenAIAnswer, event, openai_error, triton_answer
from runners.generation import EngineStopped, Finished, GenerationError, GenerationRequest
from runners.generation_service import GenerationService, Piece
from runners.model_service import MODEL_VERSION
from runners.serving import clock

if TYPE_CHECKING:
    from runners.model_service import ModelService

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


class GenerateError(Exception):
    """A refused or failed generation request: its status and message; `openai`: answer with
    OpenAI's error object, else Triton's `{"error": ...}`."""

    def __init__(self, status: int, message: str, openai: bool) -> None:
        super().__init__(message)
        self.status = status
        self.openai = openai

    def body(self) -> bytes:
        if self.openai:
            # The field a message starts with ("max_tokens: must be >= 1"), as OpenAI's `param`.
            field = re.match(r"([\w.\[\]]+): ", str(self))
            param = field.group(1) if field else None
            return json.dumps(openai_error(str(self), self.status, param)).encode()
        return json.dumps({"error": str(self)}).encode()


@dataclass
class Stream:
    """An answer sent as it is made: its headers, then each of `chunks` as it comes."""

    headers: list[tuple[bytes, bytes]]
    chunks: AsyncIterator[bytes]


Answer = tuple[int, bytes, list[tuple[bytes, bytes]]] | Stream


class GenerationRoutes:
    """The generation endpoints of the model `service` serves."""

    def __init__(self, service: ModelService) -> None:
        self.service = service

    @property
    def generation(self) -> GenerationService | None:
        return self.service.generation

    def models(self) -> Answer:
        if self.generation is None:  # a model that does not generate lists none
            data = {"object": "list", "data": []}
        else:
            data = self.generation.models_document()
        return 200, json.dumps(data).encode(), list(_JSON)

    async def openai(self, body: bytes, chat: bool) -> Answer:
        """`POST /v1/completions` (chat false) or `/v1/chat/completions`."""
        parse = chat_request if chat else completion_request
        request, generation = self._accept(body, parse, openai=True)
        answer = OpenAIAnswer(self.service.name, chat, request.include_usage)
        pieces = self._counted(generation, openai=True)
        if request.stream:
            return Stream(list(_SSE), self._openai_events(answer, pieces))
        text, finished = await _collect(pieces)
        return 200, json.dumps(answer.whole(text, finished)).encode(), list(_JSON)

    async def triton(self, body: bytes, stream: bool) -> Answer:
        """`POST /v2/models/{name}/generate` or `generate_stream` (the name checked already)."""
        name = self.service.name
        request, generation = self._accept(
            body, lambda doc: triton_request(doc, name, stream), openai=False
        )
        pieces = self._counted(generation, openai=False)
        if stream:
            return Stream(list(_SSE), self._triton_events(pieces))
        text, finished = await _collect(pieces)
        document = triton_answer(name, MODEL_VERSION, text, finished)
        return 200, json.dumps(document).encode(), list(_JSON)

    def _accept(self, body: bytes, parse, openai: bool) -> tuple[TextRequest, GenerationRequest]:
        """The request parsed and checked against the model; counted as received, and as
        refused if it is not served."""
        metrics = self.service.metrics
        if metrics is not None:
            metrics.received()
        try:
            if self.generation is None:
                raise GenerateError(
                    404 if openai else 400,
                    f"model: {self.service.name!r} does not generate text here: "
                    f"{self.service.generation_refusal}",
                    openai,
                )
            try:
                document = json.loads(body)
            except ValueError as exc:
                message = f"the request body is not valid JSON: {exc}"
                raise GenerateError(400, message, openai) from None
            try:
                request = parse(document)
                if request.model != self.service.name:
                    raise GenerateError(
                        404,
                        f"model: {request.model!r} is not served here; this server serves "
                        f"{self.service.name!r}",
                        openai,
                    )
                return request, self.generation.engine_request(request)
            except BadRequest as exc:
                raise GenerateError(400, str(exc), openai) from None
        except GenerateError:
            if metrics is not None:
                metrics.refused()
            raise

    async def _counted(self, request: GenerationRequest, openai: bool) -> AsyncIterator[Piece]:
        """The request's pieces, its end counted in the metrics: served (queue: until its
        prefill began; compute: the rest), failed, or cancelled (its client went away)."""
        metrics = self.service.metrics
        arrived = clock()
        try:
            async for piece in self.generation.generate(request):
                yield piece
                if piece.finished is not None and metrics is not None:
                    latency = clock() - arrived
                    queue_s = piece.finished.queue_s
                    metrics.served(latency, queue_s, latency - queue_s)
                    metrics.generated(piece.finished.completion_tokens)
        except (GenerationError, EngineStopped) as exc:
            if metrics is not None:
                metrics.failed()
            raise GenerateError(500, str(exc), openai) from None
        except BaseException:
            if metrics is not None:
                metrics.cancelled()
            raise

    async def _openai_events(
        self, answer: OpenAIAnswer, pieces: AsyncIterator[Piece]
    ) -> AsyncIterator[bytes]:
        first, finished = True, None
        try:
            async for piece in pieces:
                yield event(answer.chunk(piece.text, piece.finished, first))
                first, finished = False, piece.finished
        except GenerateError as exc:
            yield event(openai_error(str(exc), exc.status))
            yield DONE
            return
        if answer.include_usage:
            yield event(answer.usage_chunk(finished))
        yield DONE

    async def _triton_events(self, pieces: AsyncIterator[Piece]) -> AsyncIterator[bytes]:
        name, version = self.service.name, MODEL_VERSION
        try:
            async for piece in pieces:
                yield event(triton_answer(name, version, piece.text, piece.finished))
        except GenerateError as exc:
            yield event({"error": str(exc)})


async def _collect(pieces: AsyncIterator[Piece]) -> tuple[str, Finished]:
    """The whole text of a request that is not streamed, and how it ended."""
    texts, finished = [], None
    async for piece in pieces:
        texts.append(piece.text)
        finished = piece.finished
    return "".join(texts), finished
