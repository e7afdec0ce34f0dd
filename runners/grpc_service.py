"""The worker's gRPC server: `inference.GRPCInferenceService` (the Open Inference Protocol) and
our `bench.BenchWorker` extension, on grpcio's asyncio server.

A malformed request (a tensor or output the model does not have among them) gets
INVALID_ARGUMENT, an unknown model or version NOT_FOUND, a message over the size limit
RESOURCE_EXHAUSTED (from grpcio itself), a failing model INTERNAL; the server goes on. The
Prometheus metrics go over HTTP, on a port of their own (gRPC has no GET /metrics).
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf import json_format

from runners import grpc_codec
from runners.grpc_v2 import bench_worker_pb2, bench_worker_pb2_grpc, model_config_pb2
from runners.grpc_v2 import inference_pb2 as pb
from runners.grpc_v2 import inference_pb2_grpc as pb_grpc
from runners.model_service import EXTENSIONS, SERVER_NAME, ModelService, UnknownModel
from runners.protocol import ProtocolError


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The protocol's RPCs (their CamelCase names are the wire's) onto the model service."""

    def __init__(self, service: ModelService) -> None:
        self.service = service

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=True)

    async def ModelReady(self, request, context):
        try:
            self.service.check(request.name, request.version)
        except UnknownModel:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name=SERVER_NAME, version="1", extensions=EXTENSIONS)

    async def ModelMetadata(self, request, context):
        await self._check_model(request.name, request.version, context)
        meta = self.service.metadata()
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensor(**spec) for spec in meta["inputs"]],
            outputs=[tensor(**spec) for spec in meta["outputs"]],
        )

    async def ModelConfig(self, request, context):
        await self._check_model(request.name, request.version, context)
        config = json_format.ParseDict(self.service.config(), model_config_pb2.ModelConfig())
        return pb.ModelConfigResponse(config=config)

    async def ModelStatistics(self, request, context):
        if request.name or request.version:  # empty names every model, every version
            await self._check_model(request.name or self.service.name, request.version, context)
        return json_format.ParseDict(self.service.statistics(), pb.ModelStatisticsResponse())

    async def ModelInfer(self, request, context):
        await self._check_model(request.model_name, request.model_version, context)
        try:
            response = await self.service.infer(grpc_codec.request_from_message(request))
        except ProtocolError as exc:
            code, details = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except Exception as exc:  # the model failed on a well-formed request
            code, details = (
                grpc.StatusCode.INTERNAL,
                f"inference failed: {type(exc).__name__}: {exc}",
            )
        else:
            return grpc_codec.response_message(response)
        await context.abort(code, details)

    async def _check_model(self, name: str, version: str, context) -> None:
        try:
            self.service.check(name, version)
        except UnknownModel as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))


class WorkerServicer(bench_worker_pb2_grpc.BenchWorkerServicer):
    def __init__(self, service: ModelService) -> None:
        self.service = service

    async def WorkerFacts(self, request, context):
        return bench_worker_pb2.WorkerFactsResponse(json=json.dumps(self.service.worker_facts()))


async def serve_grpc(
    service: ModelService,
    startup: Callable[[], Awaitable[None]],
    host: str,
    port: int,
    max_request_bytes: int,
    metrics_port: int = 0,
) -> None:
    """Build the model, then serve until SIGTERM or SIGINT, then stop gracefully. The model's
    Prometheus metrics, where on, are served over HTTP at `host`:`metrics_port`/metrics (0: a
    free port, which the worker's facts name)."""
    await startup()
    exporter = None
    if service.metrics is not None:
        from prometheus_client import start_http_server

        exporter, _ = start_http_server(metrics_port, host, service.metrics.registry)
        service.metrics_port = exporter.server_port
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_request_bytes),
            ("grpc.max_send_message_length", -1),
            # grpcio sets SO_REUSEPORT by default: two replicas could then share one port
            # silently. A taken port must fail the start instead.
            ("grpc.so_reuseport", 0),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(service), server)
    bench_worker_pb2_grpc.add_BenchWorkerServicer_to_server(WorkerServicer(service), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    server.add_insecure_port(address)
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await server.stop(grace=2.0)
    await service.stop()
    if exporter is not None:
        exporter.shutdown()
