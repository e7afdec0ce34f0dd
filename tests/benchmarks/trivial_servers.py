"""Trivial Open Inference Protocol endpoints, to time a client on its own: they answer every
inference request with one precomputed response (a 1x64 FP32 output and zero server timings)
without decoding the request.

    python -m uvicorn tests.benchmarks.trivial_servers:app --port PORT --lifespan off   (HTTP)
    python -m tests.benchmarks.trivial_servers PORT                                     (gRPC)
"""

from __future__ import annotations

import asyncio
import sys

import grpc
import numpy as np

from runners import grpc_codec
from runners.grpc_v2 import inference_pb2 as pb
from runners.grpc_v2 import inference_pb2_grpc as pb_grpc
from runners.protocol import InferResponse, Tensor, encode_response

_RESPONSE = InferResponse(
    "mlp",
    [Tensor.from_array("output", np.zeros((1, 64), np.float32))],
    parameters={"queue_s": 0.0, "compute_s": 0.0, "batch_size": 1, "batch_requests": 1},
)
_BODY, _HEADERS = encode_response(_RESPONSE, binary=True)
_HTTP_HEADERS = [(k.lower().encode(), v.encode()) for k, v in _HEADERS.items()] + [
    (b"content-length", str(len(_BODY)).encode())
]
_GRPC_RESPONSE = grpc_codec.response_message(_RESPONSE)


async def app(scope, receive, send) -> None:
    """ASGI: read the body, answer with the fixed response."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": _HTTP_HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


class _Servicer(pb_grpc.GRPCInferenceServiceServicer):
    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=True)

    async def ModelInfer(self, request, context):
        return _GRPC_RESPONSE


async def _serve_grpc(port: int) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(_Servicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(_serve_grpc(int(sys.argv[1])))
