"""`endpoint`: a service someone already deployed, at the URL the user names (their Kubernetes
service, a Triton or KServe server, our own worker): the harness starts nothing, it sends the
load and measures.

`protocol: v2` speaks the Open Inference Protocol's REST API at `url` (`GET /v2/health/ready`,
`POST /v2/models/{model_name}/infer`), items encoded as our workers take them (sentences as a
BYTES tensor `text`, arrays as `input`); a server that also speaks our `bench_worker` extension
tells which predictor it runs. `protocol: json` POSTs `request_template` to `url`, the request's
items as a JSON list in place of `{{inputs}}`, and reads the outputs at `response_path`.
`protocol: openai` streams generations from an OpenAI-compatible server at `url`/v1/...
(`runners.openai_client`): ready when `GET /v1/models` answers, then one short generation.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bench.load.sut import MetricsSource, Request, Response, Runner, RunnerError, RunnerFacts
from bench.models import build_model
from runners.http import V2HttpClient, error_text
from runners.openai_client import WARM_UP_PROMPT, OpenAIClient
from runners.remote import RemoteError

_PLACEHOLDER = "{{inputs}}"
_RETRY_S = 0.2  # between readiness probes while start() waits
_NAN = float("nan")


class EndpointRunner(Runner):
    name = "endpoint"

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        st = cfg.strategy
        self.url = st.url.rstrip("/")
        # Nothing known of how the service serves: how many workers, replicas, what isolation.
        self._facts = RunnerFacts(workers=0, replicas=0, isolation="external", protocol="http")
        self.model_name = st.model_name or cfg.model.name
        self._client = V2HttpClient(
            self.model_name,
            st.payload == "binary",
            st.client_connections,
            credential_headers(st),
        )
        self._openai: OpenAIClient | None = None
        if st.protocol == "openai":
            self._openai = OpenAIClient(
                self.model_name,
                str(st.openai.api),
                st.openai.ignore_eos,
                st.client_connections,
                credential_headers(st),
            )
            self._facts.strategy_facts["openai_api"] = str(st.openai.api)

    async def start(self) -> None:
        """Wait up to `start_timeout_s` for the service to say it is ready (v2, openai) or to
        answer a request (json), then send it one request; RunnerError naming the URL if it
        does not."""
        if self._openai is not None:
            await self._start_openai()
            return
        await self._client.open()
        sample = build_model(self.cfg.model).samples(1, 0)
        try:
            await self._until_ready(sample)
            if self.cfg.strategy.protocol == "v2":
                await self._client.infer(self.url, sample)
                self._facts.predictor = await self._predictor()
        except RemoteError as exc:
            await self.stop()
            raise RunnerError(f"strategy.url {self.url} refused the first request: {exc}") from None
        except BaseException:
            await self.stop()
            raise

    async def _start_openai(self) -> None:
        """The served model is the server's: nothing is built here, one short generation."""
        st = self.cfg.strategy
        await self._openai.open()
        try:
            deadline = time.monotonic() + st.start_timeout_s
            while not await self._openai.ready(self.url):
                if time.monotonic() > deadline:
                    raise RunnerError(
                        f"strategy.url {self.url} is not ready after {st.start_timeout_s:g} s "
                        f"(GET {self.url}/v1/models did not answer 200); start the server, or "
                        "check the URL and strategy.protocol"
                    )
                await asyncio.sleep(_RETRY_S)
            await self._openai.generate(self.url, [WARM_UP_PROMPT])
        except RemoteError as exc:
            await self.stop()
            raise RunnerError(
                f"strategy.url {self.url} refused the first generation (model "
                f"{self.model_name!r}): {exc}"
            ) from None
        except BaseException:
            await self.stop()
            raise

    async def _until_ready(self, sample: list[Any]) -> None:
        st = self.cfg.strategy
        deadline = time.monotonic() + st.start_timeout_s
        last = "no answer"
        while True:
            if st.protocol == "v2":
                if await self._client.ready(self.url):
                    return
                last = f"GET {self.url}/v2/health/ready did not answer 200"
            else:
                try:
                    await self._post_json(sample)
                    return
                except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                    last = f"POST {self.url}: {type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise RunnerError(
                    f"strategy.url {self.url} is not ready after {st.start_timeout_s:g} s "
                    f"({last}); start the service, or check the URL and strategy.protocol"
                )
            await asyncio.sleep(_RETRY_S)

    async def _predictor(self) -> dict[str, Any]:
        """Our workers' predictor facts, where the server speaks our extension; else none."""
        try:
            async with self._client.session.get(f"{self.url}/v2") as response:
                server = await response.json()
        except (aiohttp.ClientError, ValueError):
            return {}
        if not isinstance(server, dict) or "bench_worker" not in server.get("extensions", []):
            return {}
        return (await self._client.worker_facts(self.url)).get("predictor", {})

    async def infer(self, request: Request) -> Response:
        if self._openai is not None:
            return await self._openai.generate(self.url, request.samples)
        if self.cfg.strategy.protocol == "v2":
            served = await self._client.infer(self.url, request.samples)
            return Response(served.output, served.queue_s, served.compute_s)
        output = await self._post_json(request.samples)
        return Response(output, _NAN, _NAN)  # the service does not say how long it queued

    async def _post_json(self, samples: Sequence[Any]) -> np.ndarray:
        st = self.cfg.strategy
        body = render(st.request_template, samples)
        headers = {"Content-Type": "application/json"}
        async with self._client.session.post(self.url, data=body, headers=headers) as response:
            payload = await response.read()
            if response.status != 200:
                raise RemoteError(f"HTTP {response.status}: {error_text(payload)}")
        try:
            return np.asarray(extract(json.loads(payload), st.response_path))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise RemoteError(
                f"strategy.response_path {st.response_path!r} does not lead to the outputs in "
                f"{payload[:200]!r}: {exc}"
            ) from None

    async def stop(self) -> None:
        await self._client.close()
        if self._openai is not None:
            await self._openai.close()

    def metrics_source(self) -> MetricsSource | None:
        url = self.cfg.strategy.metrics_url
        return MetricsSource((url,), self.model_name) if url else None

    @property
    def facts(self) -> RunnerFacts:
        return self._facts


def credential_headers(st: Any) -> dict[str, str]:
    """The header carrying `strategy.token_env`'s or `strategy.token_file`'s token (none if
    neither is set); RunnerError naming the field where the token is not there. The token
    itself is never in a message."""
    if st.token_env:
        token = os.environ.get(st.token_env, "").strip()
        where = f"strategy.token_env={st.token_env}: the environment has no {st.token_env}"
    elif st.token_file:
        path = Path(st.token_file).expanduser()
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise RunnerError(f"strategy.token_file={path}: {exc.strerror}") from None
        where = f"strategy.token_file={path}: the file is empty"
    else:
        return {}
    if not token:
        raise RunnerError(where)
    value = f"Bearer {token}" if st.token_header.lower() == "authorization" else token
    return {st.token_header: value}


def render(template: str, samples: Sequence[Any]) -> str:
    """`template` with the items, as a JSON list, in place of `{{inputs}}`."""
    return template.replace(_PLACEHOLDER, json.dumps([_jsonable(item) for item in samples]))


def _jsonable(item: Any) -> Any:
    if isinstance(item, np.ndarray):
        return item.tolist()
    if isinstance(item, bytes):  # an encoded image: JSON has no bytes, base64 is the custom
        return base64.b64encode(item).decode("ascii")
    if isinstance(item, dict):
        return {key: _jsonable(value) for key, value in item.items()}
    return item


def extract(document: Any, path: str) -> Any:
    """The value at `path` in a parsed JSON document: keys and list indices separated by dots
    ("outputs.0.data"); an empty path is the document itself."""
    for step in filter(None, path.split(".")):
        document = document[int(step)] if isinstance(document, list) else document[step]
    return document
