"""What the `http` and `grpc` runners share: replicas of the worker process on consecutive
ports, each built from the run's config; readiness; cold start and its parts; requests spread
round robin; batch sizes counted from the responses; everything stopped on the way out.

A subclass brings the client: how to probe readiness, send one request, and read a worker's
facts over its protocol (and, for HTTP, an optional nginx in front).
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import site
import sys
import tempfile
import time
import warnings
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

import runners
from bench.load.sut import (
    Fault,
    MetricsSource,
    Request,
    Response,
    Runner,
    RunnerError,
    RunnerFacts,
)
from bench.models import build_model
from runners.batching import Served
from runners.binding import exposure_warning
from runners.nginx import start_nginx
from runners.processes import (
    Child,
    exit_text,
    free_port_run,
    spawn,
    terminate,
    wait_ready,
    watch_exit,
)
from runners.protocol import InferResponse
from runners.worker import ENTRY

# The parts of its cold start a worker times itself (GET /v2/bench/worker); they add up.
WORKER_PARTS = ("process_s", "imports_s", "model_load_s", "first_inference_s")


def worker_config(cfg: Any, processes: int | None = None) -> str:
    """The config the workers build from, as YAML. With several worker processes (default: the
    strategy's replicas) and `backend.threads` null, each worker's thread probe tries at most
    cores // processes intra-op threads (at least one): N processes each taking every core
    would oversubscribe the host and measure the contention instead."""
    doc = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    processes = cfg.strategy.replicas if processes is None else processes
    backend = doc["backend"]
    if backend.get("threads") is None and backend.get("max_threads") is None and processes > 1:
        backend["max_threads"] = max(1, _cores() // processes)
    return OmegaConf.to_yaml(OmegaConf.create(doc))


def worker_argv(
    config: Path, protocol: str, host: str, port: int, max_request_bytes: int
) -> list[str]:
    """The command starting one worker process, stamped with the time it is spawned."""
    return [
        sys.executable, "-c", ENTRY,
        "--config", str(config),
        "--protocol", protocol,
        "--host", host,
        "--port", str(port),
        "--max-request-bytes", str(max_request_bytes),
        "--spawned-at", repr(time.monotonic()),
        "--watch-stdin",
    ]  # fmt: skip


def worker_env() -> dict[str, str]:
    """The environment of a worker process: ours, with our packages importable from where this
    process imports them. That folder goes on PYTHONPATH only where the interpreter would not
    find it by itself (a checkout run with pytest's `pythonpath`); an installed package's site
    directory is not put there, ahead of the standard library."""
    root = code_root()
    path = [os.environ.get("PYTHONPATH")]
    if str(root) not in _site_directories():
        path.insert(0, str(root))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}


def code_root() -> Path:
    """The folder holding the `runners` package (and `bench` beside it) that this process runs."""
    return Path(next(iter(runners.__path__))).resolve().parent


def _site_directories() -> set[str]:
    folders = [*site.getsitepackages(), site.getusersitepackages()]
    return {str(Path(folder).resolve()) for folder in folders}


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class RemoteError(RunnerError):
    """The server answered a request with an error; the message is the server's."""


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def served_from(response: InferResponse) -> Served:
    """A v2 response as what the runner reports; timings absent from it are NaN."""
    if not response.outputs:
        raise RunnerError(f"the response of model {response.model_name!r} has no outputs")
    output = np.asarray(response.outputs[0].data)
    parameters = response.parameters
    return Served(
        output=output,
        queue_s=float(parameters.get("queue_s", math.nan)),
        compute_s=float(parameters.get("compute_s", math.nan)),
        batch_size=int(parameters.get("batch_size", len(output))),
        batch_requests=max(1, int(parameters.get("batch_requests", 1))),
        cache_hit=parameters.get("cache_hit"),
        cache_entries=int(parameters.get("cache_entries", 0)),
        cache_bytes=int(parameters.get("cache_bytes", 0)),
    )


class RemoteRunner(Runner):
    """Replicas of `python -m runners.worker`, served over `protocol`."""

    name: str
    protocol: str  # what the workers speak: http, grpc

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        st = cfg.strategy
        self.model_name = cfg.model.name
        self._facts = RunnerFacts(
            workers=st.workers * st.replicas,
            replicas=st.replicas,
            isolation="process",
            protocol=self.protocol,
            load_balancer=self._load_balancer(),
        )
        self._children: list[Child] = []
        self._faults: list[Fault] = []
        self._workdir: Path | None = None
        self._replicas: list[str] = []
        self._targets: list[str] = []  # where requests go: the replicas, or the load balancer
        self._metrics_urls: list[str] = []  # each replica's Prometheus metrics
        self._turn = 0
        # Per target, its cache as its last response left it: entries, bytes (with nginx in
        # front, the one target stands for whichever replica answered last).
        self._caches: dict[str, tuple[int, int]] = {}

    # --- what a protocol brings ----------------------------------------------------------------

    def _load_balancer(self) -> str:
        return self.cfg.strategy.load_balancer

    @abstractmethod
    async def _open(self) -> None:
        """Create the client (connection pool, channels)."""

    @abstractmethod
    async def _ready(self, target: str) -> bool:
        """Whether the server at `target` ("host:port") says it is ready; never raises."""

    @abstractmethod
    async def _call(self, target: str, samples: Sequence[Any]) -> Served: ...

    @abstractmethod
    async def _worker_facts(self, target: str) -> dict[str, Any]: ...

    @abstractmethod
    async def _close(self) -> None: ...

    async def _front(
        self, replicas: list[str], listen: str, target: str, sample: list[Any]
    ) -> bool:
        """Start nginx in front of `replicas` if the strategy asks for it, listening on
        `listen` and reached at `target`, ready and warmed; False if there is none (the client
        spreads requests)."""
        st = self.cfg.strategy
        if st.load_balancer != "nginx":
            return False
        workdir = self._workdir / "nginx"
        child = start_nginx(replicas, listen, st.max_request_bytes, workdir, self.protocol)
        self._adopt(child)
        await wait_ready(child, lambda: self._ready(target), st.start_timeout_s)
        await self._call(target, sample)
        return True

    # --- the Runner interface ------------------------------------------------------------------

    async def start(self) -> None:
        began = time.monotonic()
        try:
            await self._start(began)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, began: float) -> None:
        st = self.cfg.strategy
        warning = exposure_warning(st.host, f"strategy={self.name}'s servers")
        if warning:
            warnings.warn(warning, stacklevel=3)
        self._workdir = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-"))
        self._workdir.chmod(0o755)  # an nginx worker running as nobody reads below it
        extra = 0 if self._load_balancer() == "none" else 1
        first_port = st.port or free_port_run(st.host, st.replicas + extra)
        host = _connect_host(st.host)
        self._replicas = [address(host, first_port + i) for i in range(st.replicas)]
        self._spawn_replicas(first_port)
        await self._open()
        sample = build_model(self.cfg.model).samples(1, 0)
        ups = await asyncio.gather(
            *(
                self._bring_up(child, target, sample)
                for child, target in zip(self._children, self._replicas, strict=True)
            )
        )
        done, slowest = max(ups, key=lambda up: up[0])
        # Each replica's own, not the load balancer's: every process keeps its own registry.
        self._metrics_urls = [
            f"http://{address(host, facts['metrics_port'])}/metrics"
            for _, facts in ups
            if facts.get("metrics_port")
        ]
        front = address(host, first_port + st.replicas)
        listen = address(st.host, first_port + st.replicas)
        if await self._front(self._replicas, listen, front, sample):
            done = time.monotonic()
            self._targets = [front]
        else:
            self._targets = self._replicas
        self._record_cold_start(done - began, slowest)

    def _spawn_replicas(self, first_port: int) -> None:
        st = self.cfg.strategy
        config = self._workdir / "config.yaml"
        config.write_text(worker_config(self.cfg))
        env = worker_env()
        for i in range(st.replicas):
            argv = worker_argv(config, self.protocol, st.host, first_port + i, st.max_request_bytes)
            log = self._workdir / f"replica-{i}.log"
            self._adopt(self._launch(i, argv, log, env))

    def _adopt(self, child: Child) -> None:
        """Keep `child` to stop it at the end, and record it as a fault if it exits before."""
        self._children.append(child)
        watch_exit(child, self._exited)

    def _exited(self, child: Child, code: int, at: float) -> None:
        cause = self._exit_cause(child)
        what = f"{child.name} exited with {exit_text(code)}" + (f" ({cause})" if cause else "")
        self._faults.append(Fault(what, at))

    def _exit_cause(self, child: Child) -> str:
        """What the runner knows of why `child` exited ("" where nothing): a subclass with
        isolation may know that its memory limit killed it."""
        return ""

    def faults(self) -> list[Fault]:
        return list(self._faults)

    def metrics_source(self) -> MetricsSource | None:
        if not self._metrics_urls:
            return None
        return MetricsSource(tuple(self._metrics_urls), self.model_name)

    def _launch(self, index: int, argv: list[str], log: Path, env: dict[str, str]) -> Child:
        """Start replica `index`'s worker (a subclass may start it inside isolation)."""
        return spawn(f"{self.name} replica {index}", argv, log, env, True)

    def _record_cold_start(self, cold_start_s: float, worker: dict[str, Any]) -> None:
        """The cold start, and its parts as measured by `worker` (the last replica ready)."""
        facts = self._facts
        facts.cold_start_s = cold_start_s
        facts.cold_start_process_s = worker["process_s"]
        facts.cold_start_imports_s = worker["imports_s"]
        facts.cold_start_model_load_s = worker["model_load_s"]
        facts.cold_start_first_inference_s = worker["first_inference_s"]
        facts.cold_start_serving_s = cold_start_s - sum(worker[part] for part in WORKER_PARTS)
        facts.predictor = worker["predictor"]

    async def _bring_up(
        self, child: Child, target: str, sample: list[Any]
    ) -> tuple[float, dict[str, Any]]:
        """Wait until the replica is ready and has answered one request over the wire; return
        when that was, and the facts the worker measured about itself."""
        await wait_ready(child, lambda: self._ready(target), self.cfg.strategy.start_timeout_s)
        await self._call(target, sample)
        done = time.monotonic()
        return done, await self._worker_facts(target)

    async def infer(self, request: Request) -> Response:
        target = self._targets[self._turn % len(self._targets)]
        self._turn += 1
        served = await self._call(target, request.samples)
        if served.cache_hit is not None:
            self._caches[target] = (served.cache_entries, served.cache_bytes)
        if not served.cache_hit:  # a cache hit ran no batch
            # Each of a batch's requests adds its share, so the counts are of batches.
            counts = self._facts.batch_sizes_formed
            counts[served.batch_size] = (
                counts.get(served.batch_size, 0.0) + 1 / served.batch_requests
            )
        return Response(served.output, served.queue_s, served.compute_s, served.cache_hit)

    async def stop(self) -> None:
        """Close the client, stop every process started, remove the temporary folder; safe to
        call after a failed or partial start, and twice."""
        try:
            await self._close()
        finally:
            children, self._children = self._children, []
            await terminate(children, self.cfg.strategy.stop_timeout_s)
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None

    @property
    def facts(self) -> RunnerFacts:
        if self._caches:
            held = list(self._caches.values())
            self._facts.strategy_facts.update(
                cache_entries=sum(entries for entries, _ in held),
                cache_mb=sum(size for _, size in held) / 1e6,
            )
        return self._facts

    @property
    def addresses(self) -> list[str]:
        """Where the replicas listen, as "host:port" (a load balancer in front is not listed)."""
        return list(self._replicas)


def _connect_host(host: str) -> str:
    """Where the client connects to reach servers bound to `host` (a wildcard: loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
