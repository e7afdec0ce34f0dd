"""`http`: replicas of the worker behind uvicorn, driven by an aiohttp client over the Open
Inference Protocol's REST API; round robin from the client, or through nginx (see
`RemoteRunner`).

aiohttp, not httpx: httpx managed under 400 requests/s with a p50 of 60 ms against a trivial
uvicorn endpoint on these machines, so it would have measured itself. This client, encoding and
decoding v2 tensors, sustains about 11,600 requests/s there with 32 outstanding, at 86 us of
client CPU per request (150 us with one outstanding); tests/benchmarks/test_serving_overhead.py
measures it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import aiohttp

from bench.config import generative
from bench.load.generation import Prompt
from bench.load.sut import Request, Response
from runners import protocol
from runners.batching import Served
from runners.openai_client import OpenAIClient
from runners.remote import RemoteError, RemoteRunner, served_from

_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=1.0)


class V2HttpClient:
    """An aiohttp client of Open Inference Protocol servers over REST, each named by its base
    URL ("http://127.0.0.1:8000"): readiness, one inference, and our worker's facts."""

    def __init__(
        self,
        model_name: str,
        binary: bool,
        connections: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        """`binary`: tensors as Triton's binary extension, else JSON lists; `connections`: the
        pool's size, all servers together (0: unlimited); `headers`: sent with every request
        (a credential: it is never logged)."""
        self.model_name = model_name
        self.binary = binary
        self.connections = connections
        self.headers = headers or {}
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.connections,
            limit_per_host=0,
            # Shorter than the servers' keep-alive (uvicorn 600 s, nginx 650 s): the client
            # closes an idle connection before a server does, never reusing a closing one.
            keepalive_timeout=60,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            # No overall deadline: the load driver times requests out itself.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
            headers=self.headers,
        )

    async def ready(self, base: str) -> bool:
        """Whether the server at `base` says it is ready; never raises."""
        try:
            url = f"{base}/v2/health/ready"
            async with self.session.get(url, timeout=_PROBE_TIMEOUT) as response:
                return response.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    async def infer(self, base: str, samples: Sequence[Any]) -> Served:
        request = protocol.InferRequest(
            protocol.items_to_tensors(samples), binary_output=self.binary
        )
        body, headers = protocol.encode_request(request, self.binary)
        url = f"{base}/v2/models/{self.model_name}/infer"
        async with self.session.post(url, data=body, headers=headers) as response:
            payload = await response.read()
            if response.status != 200:
                raise RemoteError(f"HTTP {response.status}: {error_text(payload)}")
            header_length = response.headers.get(protocol.HEADER_LENGTH)
        return served_from(protocol.decode_response(payload, header_length))

    async def worker_facts(self, base: str) -> dict[str, Any]:
        """Our worker's `GET /v2/bench/worker` document."""
        async with self.session.get(f"{base}/v2/bench/worker") as response:
            response.raise_for_status()
            return await response.json()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


class HttpRunner(RemoteRunner):
    """A generative model's prompts (`bench.config.generative`) are driven over the workers'
    OpenAI API, streamed (`runners.openai_client`); every other request over v2 inference."""

    name = "http"
    protocol = "http"

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        st = cfg.strategy
        self._client = V2HttpClient(self.model_name, st.payload == "binary", st.client_connections)
        self._openai: OpenAIClient | None = None
        if generative(cfg):
            self._openai = OpenAIClient(
                self.model_name,
                str(st.openai.api),
                st.openai.ignore_eos,
                st.client_connections,
            )

    async def _open(self) -> None:
        await self._client.open()
        if self._openai is not None:
            await self._openai.open()

    async def _ready(self, target: str) -> bool:
        return await self._client.ready(f"http://{target}")

    async def _call(self, target: str, samples: Sequence[Any]) -> Served:
        return await self._client.infer(f"http://{target}", samples)

    async def infer(self, request: Request) -> Response:
        # A prompt of the generative workload streams over /v1; anything else (the accuracy
        # check's items: the next token's logits against the fp32 reference) over v2.
        if self._openai is None or not isinstance(request.samples[0], Prompt):
            return await super().infer(request)
        target = self._targets[self._turn % len(self._targets)]
        self._turn += 1
        return await self._openai.generate(f"http://{target}", request.samples)

    async def _worker_facts(self, target: str) -> dict[str, Any]:
        return await self._client.worker_facts(f"http://{target}")

    async def _close(self) -> None:
        await self._client.close()
        if self._openai is not None:
            await self._openai.close()


def error_text(payload: bytes) -> str:
    """The server's `{"error": ...}` message, or the start of whatever it sent."""
    try:
        return str(json.loads(payload)["error"])
    except (ValueError, KeyError, TypeError):
        return payload[:200].decode("utf-8", "replace")
