"""`container`: the `http` strategy with each replica's worker inside isolation with real
resource limits, the ones a Kubernetes pod's `resources.limits` set (a CFS CPU quota, a hard
memory cap). What the limits cost is measured with every load point: the CFS periods in which
the quota ran out, the time the worker waited for the next period, its peak memory.

A worker that exceeds its memory cap, or cannot get ready within `strategy.start_timeout_s`
under its limits, fails with "does not fit: ..." and the reason, which the run records as the
point's result; the sweep goes on.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

from bench.load.sut import Request, Response, RunnerError, RunnerFacts
from runners.http import HttpRunner
from runners.isolation import open_sandbox
from runners.processes import Child, spawn
from runners.sandbox import CpuCounters, Limits, Sandbox

# What a worker prints when an allocation is refused rather than killed (RLIMIT_AS).
_ALLOCATION_FAILURES = (
    "MemoryError",
    "std::bad_alloc",
    "Cannot allocate memory",
    "failed to map segment from shared object",
)


class ContainerRunner(HttpRunner):
    name = "container"

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.limits = self._limits()
        self._sandboxes: list[Sandbox] = []
        self._point_began: CpuCounters | None = None
        self._facts.memory_limit_mb = _or_nan(self.limits.memory_mb)
        cpu = self.limits.cpus if self.limits.cpus is not None else self.limits.cores
        self._facts.cpu_limit = _or_nan(cpu)

    def _limits(self) -> Limits:
        st = self.cfg.strategy
        return Limits(cpus=st.cpus, memory_mb=st.memory_mb)

    def _launch(self, index: int, argv: list[str], log: Path, env: dict[str, str]) -> Child:
        sandbox = open_sandbox(self.cfg.strategy.isolation, self.limits, f"{self.name}-{index}")
        self._sandboxes.append(sandbox)
        self._facts.isolation = sandbox.kind
        self._facts.limits_note = self._note(sandbox)
        # The model cache outlives the worker, so the next one does not export it again.
        cache = Path(self.cfg.cache_dir).expanduser()
        cache.mkdir(parents=True, exist_ok=True)
        command = sandbox.command(argv, writable=[cache])
        return spawn(f"{self.name} replica {index}", command, log, env, True)

    def _note(self, sandbox: Sandbox) -> str:
        return sandbox.note

    async def _start(self, began: float) -> None:
        try:
            await super()._start(began)
        except Exception as exc:
            # Asked before stop() removes the sandboxes, and with them what they counted.
            reason = self._does_not_fit(exc, time.monotonic() - began)
            if reason is None:
                raise
            raise RunnerError(f"does not fit: {reason}") from exc

    async def infer(self, request: Request) -> Response:
        try:
            return await super().infer(request)
        except Exception as exc:
            reason = self._out_of_memory(str(exc))
            if reason is None:
                raise
            raise RunnerError(f"does not fit: {reason}") from exc

    def _exit_cause(self, child: Child) -> str:
        """The memory limit, where the isolation counted an OOM kill."""
        return self._out_of_memory("") or ""

    def _does_not_fit(self, exc: Exception, elapsed_s: float) -> str | None:
        """Why the workers could not start under their limits, if the limits were the cause:
        out of memory, or still starting when the start timeout ran out."""
        memory = self._out_of_memory(str(exc))
        if memory is not None:
            return f"{memory}; {exc}"
        timeout = self.cfg.strategy.start_timeout_s
        starting = all(child.process.poll() is None for child in self._children)
        if elapsed_s >= timeout and starting:
            return (
                f"not ready within strategy.start_timeout_s={timeout:g} s under "
                f"{self.limits.describe()} (peak memory {self._peak_mb():.0f} MB); {exc}"
            )
        return None

    def _out_of_memory(self, message: str) -> str | None:
        refused = any(failure in message for failure in _ALLOCATION_FAILURES)
        if not refused and not any(s.out_of_memory() for s in self._sandboxes):
            return None
        peak = self._peak_mb()
        cap = self.limits.memory_mb
        where = "" if cap is None else f" at {cap} MB"
        return f"out of memory{where}" + ("" if math.isnan(peak) else f" (peak {peak:.0f} MB)")

    def _peak_mb(self) -> float:
        peaks = [s.memory_peak_mb() for s in self._sandboxes]
        return max(peaks, default=math.nan)

    def _cpu_counters(self) -> CpuCounters | None:
        counters = [s.cpu_counters() for s in self._sandboxes]
        if not counters or any(c is None for c in counters):
            return None
        return sum(counters, CpuCounters())

    def begin_point(self) -> None:
        self._point_began = self._cpu_counters()

    @property
    def facts(self) -> RunnerFacts:
        """The limits, and what the isolation counted: CFS throttling since `begin_point`
        (since start before the first point), the peak memory and OOM kills since start."""
        facts = self._facts
        now = self._cpu_counters()
        if now is not None:
            during = now - (self._point_began or CpuCounters())
            facts.cpu_periods = during.periods
            facts.throttled_periods = during.throttled_periods
            facts.throttled_s = during.throttled_s
        facts.memory_peak_mb = self._peak_mb()
        if not math.isnan(facts.memory_peak_mb):  # an isolation that accounts memory
            facts.oom_kills = sum(s.out_of_memory() for s in self._sandboxes)
        return facts

    async def stop(self) -> None:
        try:
            await super().stop()
        finally:
            sandboxes, self._sandboxes = self._sandboxes, []
            for sandbox in sandboxes:
                await asyncio.to_thread(sandbox.close)


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)
