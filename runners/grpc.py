"""`grpc`: replicas of the worker behind grpcio's asyncio server, driven by `grpc.aio` over the
Open Inference Protocol's `GRPCInferenceService`; one channel per replica, round robin."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from runners import grpc_codec
from runners.batching import Served
from runners.grpc_v2 import bench_worker_pb2, bench_worker_pb2_grpc
from runners.grpc_v2 import inference_pb2 as pb
from runners.grpc_v2 import inference_pb2_grpc as pb_grpc
from runners.protocol import InferRequest, items_to_tensors
from runners.remote import RemoteError, RemoteRunner, served_from

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # While a replica starts, connections are refused; grpcio's default back-off (1 s, growing)
    # would then delay noticing it is up by as much, and inflate the cold start measured.
    ("grpc.initial_reconnect_backoff_ms", 20),
    ("grpc.max_reconnect_backoff_ms", 100),
]


@dataclass(frozen=True)
class _Client:
    channel: grpc.aio.Channel
    inference: pb_grpc.GRPCInferenceServiceStub
    worker: bench_worker_pb2_grpc.BenchWorkerStub


class GrpcRunner(RemoteRunner):
    name = "grpc"
    protocol = "grpc"

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self._clients: dict[str, _Client] = {}

    async def _open(self) -> None:
        """Channels are made per target on first use (`_client`)."""

    def _client(self, target: str) -> _Client:
        client = self._clients.get(target)
        if client is None:
            channel = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
            client = _Client(
                channel,
                pb_grpc.GRPCInferenceServiceStub(channel),
                bench_worker_pb2_grpc.BenchWorkerStub(channel),
            )
            self._clients[target] = client
        return client

    async def _ready(self, target: str) -> bool:
        try:
            ready = await self._client(target).inference.ServerReady(
                pb.ServerReadyRequest(), timeout=1.0
            )
        except grpc.aio.AioRpcError:
            return False
        return ready.ready

    async def _call(self, target: str, samples: Sequence[Any]) -> Served:
        message = grpc_codec.request_message(
            self.model_name, InferRequest(items_to_tensors(samples))
        )
        try:
            response = await self._client(target).inference.ModelInfer(message)
        except grpc.aio.AioRpcError as exc:
            raise RemoteError(f"gRPC {exc.code().name}: {exc.details()}") from None
        return served_from(grpc_codec.response_from_message(response))

    async def _worker_facts(self, target: str) -> dict[str, Any]:
        response = await self._client(target).worker.WorkerFacts(
            bench_worker_pb2.WorkerFactsRequest(), timeout=10.0
        )
        return json.loads(response.json)

    async def _close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.channel.close()
