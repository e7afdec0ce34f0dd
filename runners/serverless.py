"""`serverless`: scale to zero. An instance is one worker process (the `http` strategy's
worker, `runners.worker`, with one predictor thread and no batching) spawned when a request
finds no idle instance; it serves one request at a time, stays warm `keep_alive_s` after its
last one, then stops. At most `max_instances` exist at once; a request beyond them waits for
one (`overflow: queue`) or fails at once (`overflow: reject`, counted as `rejected`).

The request that spawns an instance waits for its whole cold start: spawned to ready, where a
worker is ready once its model is loaded and has run once. The worker times its own parts
(process start, imports, model load, first inference); the rest (server start, readiness
probing) is `serving`. An ONNX Runtime worker imports no torch, which its facts confirm.

`start()` starts no instance. It makes once what a platform's deployment step makes once: it
builds the predictor here and drops it, which leaves in `cache_dir` the model's ONNX export,
its size facts (and torch.compile's cache), so that cold starts measure loading the deployed
model, not an export or a measurement no platform repeats per instance.

Facts, per load point (`begin_point` starts the count): cold starts, the median of their
total and of each part, the fraction of requests that paid one, invocations, rejections, the
instances' peak count and peak RSS, and GB-seconds two ways. GB-seconds are memory x time:
memory is `memory_mb` (a platform's configured size) or else each instance's peak RSS, sampled
when it is ready, at each facts read and when it stops; time is `busy` (Lambda: each instance's
start-up plus the requests it served, as the client saw them; idle keep-alive is free) or
`lifetime` (spawn to stop). The runner records usage, not prices: the planner costs it at
`catalog.serverless_pricing` (`bench.capacity.serverless`), so a price change needs no
re-measure.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import shutil
import tempfile
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.load.sut import Request, Response, Runner, RunnerError, RunnerFacts
from runners.binding import exposure_warning
from runners.http import V2HttpClient
from runners.processes import Child, free_port_run, spawn, terminate, wait_ready
from runners.remote import (
    WORKER_PARTS,
    _connect_host,
    address,
    worker_argv,
    worker_config,
    worker_env,
)
from runners.serving import build_from_config

# The clock the workers' `--spawned-at` stamps use, so their start-up parts line up with ours.
clock = time.monotonic
GIB = 2**30  # a platform's "GB" of memory: Lambda bills MB / 1024


@dataclass
class _Instance:
    number: int
    child: Child
    base: str  # the worker's URL
    port: int
    spawned_at: float
    cold_start: dict[str, float]  # total_s at once; the worker's parts once it reports them
    rss_peak: int = 0
    busy_s: float = 0.0  # since the load point began: start-up, then requests served
    stopped_at: float = math.nan
    unreported: bool = True  # its start-up facts not fetched yet
    expiry: asyncio.TimerHandle | None = None

    def lived(self, since: float, now: float) -> float:
        """Seconds alive between `since` and `now`."""
        end = now if math.isnan(self.stopped_at) else self.stopped_at
        return max(0.0, end - max(self.spawned_at, since))

    def sample_rss(self) -> None:
        try:
            rss = psutil.Process(self.child.process.pid).memory_info().rss
        except psutil.Error:
            return  # already gone: its last reading stands
        self.rss_peak = max(self.rss_peak, rss)


@dataclass
class _Window:
    """What happened since the load point began."""

    began: float
    instances_peak: int
    invocations: int = 0
    rejected: int = 0
    cold_starts: list[dict[str, float]] = field(default_factory=list)
    torch_workers: int = 0  # instances started whose worker had imported torch
    retired: list[_Instance] = field(default_factory=list)  # instances stopped meanwhile


class ServerlessRunner(Runner):
    name = "serverless"

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        st = cfg.strategy
        self._client = V2HttpClient(cfg.model.name, binary=True, connections=0)
        self._facts = RunnerFacts(
            workers=st.max_instances,
            replicas=st.max_instances,
            isolation="process",
            protocol="http",
        )
        self._workdir: Path | None = None
        self._config: Path | None = None
        self._env = worker_env()
        self._artifact_changed = False  # an instance loaded another artifact than the first
        self._numbers = itertools.count()
        self._instances: list[_Instance] = []  # started, busy or idle
        self._idle: list[_Instance] = []  # the most recently used last
        self._starting = 0
        self._ports: set[int] = set()  # those of instances started or starting
        self._waiters: deque[asyncio.Future[_Instance | None]] = deque()
        self._stopping: set[asyncio.Task] = set()
        self._window = _Window(began=clock(), instances_peak=0)

    # --- the Runner interface ------------------------------------------------------------------

    async def start(self) -> None:
        """Deploy (the workers' config, the model's artefacts in the cache); start nothing."""
        warning = exposure_warning(self.cfg.strategy.host, "strategy=serverless's instances")
        if warning:
            warnings.warn(warning, stacklevel=2)
        self._workdir = Path(tempfile.mkdtemp(prefix="bench-serverless-"))
        self._config = self._workdir / "config.yaml"
        # Instances may all run at once: each gets its share of the cores, as replicas do.
        self._config.write_text(worker_config(self.cfg, self.cfg.strategy.max_instances))
        try:
            await asyncio.to_thread(build_from_config, self.cfg)  # deploy
            await self._client.open()
        except BaseException:
            await self.stop()
            raise
        self.begin_point()

    async def infer(self, request: Request) -> Response:
        arrived = clock()
        instance = await self._acquire()
        began = clock()
        self._window.invocations += 1
        try:
            if instance.unreported:
                # Its start-up facts come along with its first request, not before it.
                instance.unreported = False
                served, worker = await asyncio.gather(
                    self._client.infer(instance.base, request.samples),
                    self._client.worker_facts(instance.base),
                    return_exceptions=True,
                )
                if isinstance(worker, dict):
                    self._record_cold_start(instance, worker)
                if isinstance(served, BaseException):
                    raise served
            else:
                served = await self._client.infer(instance.base, request.samples)
        finally:
            instance.busy_s += clock() - began
            self._release(instance)
        # Waiting for an instance (its cold start, or a free one) is this request's queueing.
        return Response(
            output=served.output,
            queue_s=began - arrived + served.queue_s,
            compute_s=served.compute_s,
        )

    async def stop(self) -> None:
        """Stop every instance and remove the temporary folder; safe after a failed start."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(RunnerError("serverless: the runner stopped"))
        self._waiters.clear()
        for instance in list(self._instances):
            self._retire(instance)
        if self._stopping:
            await asyncio.gather(*self._stopping)
        await self._client.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def begin_point(self) -> None:
        """Count cold starts, invocations, rejections and GB-seconds from now on."""
        self._window = _Window(began=clock(), instances_peak=self._live())
        for instance in self._instances:
            instance.busy_s = 0.0

    @property
    def facts(self) -> RunnerFacts:
        """Since the load point began: the median cold start and its parts (NaN with none),
        and the serverless columns (see the module's docstring)."""
        window, now = self._window, clock()
        instances = [*window.retired, *self._instances]
        for instance in self._instances:
            instance.sample_rss()
        st = self.cfg.strategy
        memory_gb = {
            id(i): st.memory_mb / 1024 if st.memory_mb is not None else i.rss_peak / GIB
            for i in instances
        }
        busy = sum(i.busy_s * memory_gb[id(i)] for i in instances)
        lifetime = sum(i.lived(window.began, now) * memory_gb[id(i)] for i in instances)
        facts = self._facts
        starts = window.cold_starts
        facts.cold_start_s = _median(starts, "total_s")
        facts.cold_start_process_s = _median(starts, "process_s")
        facts.cold_start_imports_s = _median(starts, "imports_s")
        facts.cold_start_model_load_s = _median(starts, "model_load_s")
        facts.cold_start_first_inference_s = _median(starts, "first_inference_s")
        facts.cold_start_serving_s = _median(starts, "serving_s")
        facts.strategy_facts = {
            "cold_starts": len(starts),
            "cold_start_fraction": (
                len(starts) / window.invocations if window.invocations else math.nan
            ),
            "invocations": window.invocations,
            "rejected": window.rejected,
            "instances_peak": window.instances_peak,
            "instance_rss_peak_mb": max((i.rss_peak for i in instances), default=0) / 2**20,
            "instances_importing_torch": window.torch_workers,
            "gb_seconds_busy": busy,
            "gb_seconds_lifetime": lifetime,
        }
        return facts

    # --- the pool ------------------------------------------------------------------------------

    def _live(self) -> int:
        return len(self._instances) + self._starting

    async def _acquire(self) -> _Instance:
        """An idle instance, else a new one (this request pays its cold start), else the next
        one released (queue) or RunnerError (reject)."""
        st = self.cfg.strategy
        while True:
            if self._idle:
                instance = self._idle.pop()  # the warmest: the others may expire
                instance.expiry.cancel()
                return instance
            if self._live() < st.max_instances:
                return await self._cold_start()
            if st.overflow == "reject":
                self._window.rejected += 1
                raise RunnerError(
                    f"rejected: all {st.max_instances} instances busy "
                    "(strategy.overflow=reject; strategy.max_instances sets how many)"
                )
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                instance = await waiter
            except asyncio.CancelledError:
                # Handed an instance just as this request was cancelled: pass it on.
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    self._release(waiter.result())
                raise
            if instance is not None:
                return instance
            # None: an instance failed to start or died, so a slot is free; try again.

    async def _cold_start(self) -> _Instance:
        st = self.cfg.strategy
        self._starting += 1
        self._window.instances_peak = max(self._window.instances_peak, self._live())
        number = next(self._numbers)
        child: Child | None = None
        port = 0
        try:
            port = free_port_run(st.host, 1)
            # Free now, but an instance still starting may be about to bind it.
            while port in self._ports:
                port = free_port_run(st.host, 1)
            self._ports.add(port)
            base = f"http://{address(_connect_host(st.host), port)}"
            spawned_at = clock()
            argv = worker_argv(self._config, "http", st.host, port, st.max_request_bytes)
            log = self._workdir / f"instance-{number}.log"
            name = f"serverless instance {number}"
            # Off the event loop: forking a large parent takes milliseconds other requests
            # would wait for.
            child = await asyncio.to_thread(spawn, name, argv, log, self._env, True)
            await wait_ready(child, lambda: self._client.ready(base), st.start_timeout_s)
        except BaseException:
            self._starting -= 1
            self._ports.discard(port)
            if child is not None:
                self._stop_later(child)
            self._hand_over(None)
            raise
        ready_s = clock() - spawned_at
        self._starting -= 1
        # The start-up is billed (Lambda bills its init phase) and is this instance's first work.
        instance = _Instance(
            number, child, base, port, spawned_at, {"total_s": ready_s}, busy_s=ready_s
        )
        instance.sample_rss()
        self._instances.append(instance)
        self._window.cold_starts.append(instance.cold_start)
        return instance

    def _record_cold_start(self, instance: _Instance, worker: dict[str, Any]) -> None:
        parts = {part: float(worker[part]) for part in WORKER_PARTS}
        instance.cold_start.update(parts)
        instance.cold_start["serving_s"] = instance.cold_start["total_s"] - sum(parts.values())
        self._window.torch_workers += bool(worker.get("torch_imported"))
        # The first instance's facts; or, where a later one loaded another artifact than the
        # first (the file changed under the deployment), that one's: the harness checks the
        # artifact served against the one it expected.
        seen = self._facts.predictor.get("model_sha256")
        changed = seen is not None and worker["predictor"].get("model_sha256") != seen
        if not self._facts.predictor or (changed and not self._artifact_changed):
            self._facts.predictor = worker["predictor"]
            self._artifact_changed = changed

    def _release(self, instance: _Instance) -> None:
        """Hand the instance to the longest waiting request, else keep it warm until its
        keep-alive runs out; one whose process died goes."""
        if instance.child.process.poll() is not None:
            self._retire(instance)
            return
        if self._hand_over(instance):
            return
        loop = asyncio.get_running_loop()
        instance.expiry = loop.call_later(self.cfg.strategy.keep_alive_s, self._retire, instance)
        self._idle.append(instance)

    def _hand_over(self, instance: _Instance | None) -> bool:
        """Give the longest waiting request `instance` (None: a free slot); False if none
        waits."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(instance)
                return True
        return False

    def _retire(self, instance: _Instance) -> None:
        """Stop the instance (in the background) and free its slot."""
        if instance.expiry is not None:
            instance.expiry.cancel()
        if instance in self._idle:
            self._idle.remove(instance)
        self._instances.remove(instance)
        instance.sample_rss()
        instance.stopped_at = clock()
        self._window.retired.append(instance)
        self._stop_later(instance.child)
        self._ports.discard(instance.port)
        self._hand_over(None)

    def _stop_later(self, child: Child) -> None:
        task = asyncio.get_running_loop().create_task(
            terminate([child], self.cfg.strategy.stop_timeout_s)
        )
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    @property
    def instances(self) -> int:
        """Instances running now (starting ones included)."""
        return self._live()


def _median(records: list[dict[str, float]], key: str) -> float:
    values = [r[key] for r in records if key in r]
    return float(np.median(values)) if values else math.nan
