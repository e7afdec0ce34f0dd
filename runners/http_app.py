"""The worker's HTTP server: a minimal ASGI app speaking the Open Inference Protocol's REST
endpoints, run by uvicorn.

    GET  /v2                                   server metadata
    GET  /v2/health/live, /v2/health/ready     200 once the model is loaded and warmed
    GET  /v2/models/{name}[/versions/{v}]      model metadata
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}[/versions/{v}]/infer   JSON, or binary tensors
    POST /v2/models/{name}[/versions/{v}]/generate[_stream]   Triton's generate extension
    GET  /v1/models, POST /v1/completions, /v1/chat/completions   OpenAI's (runners.generate_routes)
    GET  /v2/models/{name}[/versions/{v}]/config  Triton's model configuration extension
    GET  /v2/models[/{name}[/versions/{v}]]/stats Triton's statistics extension
    GET  /v2/bench/worker                      our extension: what the worker measured
    GET  /metrics                              Prometheus metrics (unless switched off)

Errors are JSON `{"error": "..."}`: 400 for a malformed request (a tensor or output the model
does not have among them), 404 for an unknown path, model or version (the model has one: "1"),
405 for a wrong method, 413 for a body over the limit (the connection is closed, the server
goes on), 500 only when the model itself fails. A client that has not sent its request's
headers within `header_timeout_s` of its first byte (or of connecting) is disconnected, so slow
clients cannot hold the server's connections. A plain ASGI callable rather than a web
framework: a few routes do not need one, and every microsecond here is in the measurement.
"""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from runners import protocol
from runners.generate_routes import Answer, GenerateError, GenerationRoutes, Stream
from runners.model_service import EXTENSIONS, SERVER_NAME, ModelService, UnknownModel

_JSON = b"application/json"


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class InferenceApp:
    """The ASGI app; its lifespan start-up builds the model, before uvicorn binds its port."""

    def __init__(
        self,
        service: ModelService,
        max_request_bytes: int,
        startup: Callable[[], Awaitable[None]],
    ) -> None:
        self.service = service
        self.max_request_bytes = max_request_bytes
        self.startup = startup
        self.generation = GenerationRoutes(service)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            try:
                answer = await self._route(scope, receive)
            except HttpError as exc:
                error = json.dumps({"error": str(exc)}).encode()
                if scope["path"].startswith("/v1/"):
                    error = GenerateError(exc.status, str(exc), openai=True).body()
                answer = exc.status, error, [(b"content-type", _JSON)]
                if exc.status == 413:  # the rest of the body is not read: the connection goes
                    answer[2].append((b"connection", b"close"))
            except GenerateError as exc:
                answer = exc.status, exc.body(), [(b"content-type", _JSON)]
            if isinstance(answer, Stream):
                await _stream(answer, send, receive)
                return
            status, body, headers = answer
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception:
                    failure = traceback.format_exc()
                    await send({"type": "lifespan.startup.failed", "message": failure})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.service.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: dict, receive: Callable) -> Answer:
        parts = scope["path"].strip("/").split("/")
        method = scope["method"]
        if parts == ["metrics"] and self.service.metrics is not None:
            _expect(method, "GET")
            body, content_type = self.service.metrics.exposition()
            return 200, body, [(b"content-type", content_type.encode())]
        if parts[0] == "v1":
            return await self._openai(parts[1:], method, scope, receive)
        if parts[0] != "v2":
            raise HttpError(404, f"no such path: {scope['path']}")
        rest = parts[1:]
        if rest in ([], ["health", "live"], ["health", "ready"], ["bench", "worker"]):
            _expect(method, "GET")
            return _json(self._document(rest))
        if rest == ["models", "stats"]:  # every model's
            _expect(method, "GET")
            return _json(self.service.statistics())
        if len(rest) >= 2 and rest[0] == "models":
            name, tail, version = rest[1], rest[2:], ""
            if tail[:1] == ["versions"] and len(tail) >= 2:
                version, tail = tail[1], tail[2:]
            try:
                self.service.check(name, version)
            except UnknownModel as exc:
                raise HttpError(404, str(exc)) from None
            documents = {
                (): self.service.metadata,
                ("ready",): lambda: {"name": name, "ready": True},
                ("config",): self.service.config,
                ("stats",): self.service.statistics,
            }
            if tuple(tail) in documents:
                _expect(method, "GET")
                return _json(documents[tuple(tail)]())
            if tail == ["infer"]:
                _expect(method, "POST")
                return await self._infer(scope, receive)
            if tail in (["generate"], ["generate_stream"]):
                _expect(method, "POST")
                body = await self._body(dict(scope["headers"]), receive)
                return await self.generation.triton(body, stream=tail == ["generate_stream"])
        raise HttpError(404, f"no such path: {scope['path']}")

    async def _openai(self, rest: list[str], method: str, scope: dict, receive: Callable) -> Answer:
        if rest == ["models"]:
            _expect(method, "GET")
            return self.generation.models()
        if rest in (["completions"], ["chat", "completions"]):
            _expect(method, "POST")
            body = await self._body(dict(scope["headers"]), receive)
            return await self.generation.openai(body, chat=rest == ["chat", "completions"])
        raise HttpError(404, f"no such path: {scope['path']}")

    def _document(self, rest: list[str]) -> dict[str, Any]:
        if rest == []:
            return {"name": SERVER_NAME, "version": "1", "extensions": list(EXTENSIONS)}
        if rest == ["bench", "worker"]:
            return self.service.worker_facts()
        return {rest[1]: True}

    async def _infer(self, scope: dict, receive: Callable) -> tuple[int, bytes, list]:
        headers = dict(scope["headers"])
        body = await self._body(headers, receive)
        header_length = headers.get(protocol.HEADER_LENGTH.lower().encode())
        try:
            request = protocol.decode_request(
                body, header_length.decode("latin-1") if header_length is not None else None
            )
            response = await self.service.infer(request)
        except protocol.ProtocolError as exc:
            raise HttpError(400, str(exc)) from None
        except Exception as exc:  # the model failed on a well-formed request
            raise HttpError(500, f"inference failed: {type(exc).__name__}: {exc}") from None
        payload, out_headers = protocol.encode_response(response, request.binary_output)
        return 200, payload, [(k.lower().encode(), v.encode()) for k, v in out_headers.items()]

    async def _body(self, headers: dict[bytes, bytes], receive: Callable) -> bytes:
        """The request body, refused with 413 as soon as it is known to be over the limit."""
        limit = self.max_request_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HttpError(
                413, f"request body of {int(declared)} bytes is over the {limit}-byte limit"
            )
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HttpError(400, "the client went away mid-request")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"request body is over the {limit}-byte limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _stream(stream: Stream, send: Callable, receive: Callable) -> None:
    """Send `stream`'s chunks as they come (each one written to the socket at once); stop
    making them when the client goes away."""
    await send({"type": "http.response.start", "status": 200, "headers": stream.headers})

    async def pump() -> None:
        async for chunk in stream.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    sending, watching = asyncio.ensure_future(pump()), asyncio.ensure_future(gone())
    try:
        await asyncio.wait({sending, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, watching):
            task.cancel()
        await asyncio.gather(sending, watching, return_exceptions=True)
    if sending.done() and not sending.cancelled() and sending.exception() is not None:
        raise sending.exception()


def _expect(method: str, allowed: str) -> None:
    if method != allowed:
        raise HttpError(405, f"method {method} not allowed here; use {allowed}")


def _json(document: dict[str, Any]) -> tuple[int, bytes, list]:
    return 200, json.dumps(document).encode(), [(b"content-type", _JSON)]


def header_deadline(header_timeout_s: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing a connection whose request headers are not all in
    `header_timeout_s` after its request's first byte, or after it connected. uvicorn has no
    such timeout: its keep-alive timer stops at the first byte, so a client sending one header
    line at a time would hold the connection forever."""

    class HeaderDeadline(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout_s, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadline


def serve_http(
    service: ModelService,
    startup: Callable[[], Awaitable[None]],
    host: str,
    port: int,
    max_request_bytes: int,
    header_timeout_s: float,
) -> bool:
    """Serve until SIGTERM or SIGINT; False if the model failed to start (uvicorn logs why)."""
    config = uvicorn.Config(
        InferenceApp(service, max_request_bytes, startup),
        host=host,
        port=port,
        http=header_deadline(header_timeout_s),
        lifespan="on",
        log_level="warning",
        access_log=False,
        # Longer than any client's keep-alive: a server closing an idle connection while the
        # client reuses it is a spurious error mid-measurement.
        timeout_keep_alive=600,
        timeout_graceful_shutdown=3,
        backlog=4096,
        server_header=False,
        date_header=False,
    )
    server = uvicorn.Server(config)
    server.run()
    return server.started
