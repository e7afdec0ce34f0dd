"""Where one worker runs under resource limits: the interface every isolation implements, the
limits and counters they speak in, and the weakest of them (CPU affinity and RLIMIT_AS).

A sandbox is opened before its worker starts, turns the worker's command into one that starts
it confined, reads what the isolation counted (CFS throttling, peak memory, OOM kills) while it
runs, and is closed once the worker has stopped.
"""

from __future__ import annotations

import math
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_CONFINE = str(Path(__file__).with_name("confine.py"))


class IsolationUnavailable(Exception):
    """This isolation cannot work here; the message says why."""


@dataclass(frozen=True)
class Limits:
    """What a worker may use, as a Kubernetes pod or a device states it; None: no limit."""

    cpus: float | None = None  # a CFS quota, in cores: limits.cpu (0.5 = 500m)
    cores: int | None = None  # pinned to this many cores: a device's core count
    memory_mb: int | None = None  # a hard cap, no swap: limits.memory

    def describe(self) -> str:
        parts = []
        if self.cpus is not None:
            parts.append(f"{self.cpus:g} CPU")
        if self.cores is not None:
            parts.append(f"{self.cores} core{'s' if self.cores > 1 else ''}")
        if self.memory_mb is not None:
            parts.append(f"{self.memory_mb} MB")
        return " / ".join(parts) or "no limits"


@dataclass(frozen=True)
class CpuCounters:
    """A cgroup's CFS bandwidth counters (`cpu.stat`): enforcement periods in which it had work
    to run, periods in which it used up its quota and waited, and the time spent waiting."""

    periods: int = 0
    throttled_periods: int = 0
    throttled_s: float = 0.0

    def __add__(self, other: CpuCounters) -> CpuCounters:
        return CpuCounters(
            self.periods + other.periods,
            self.throttled_periods + other.throttled_periods,
            self.throttled_s + other.throttled_s,
        )

    def __sub__(self, other: CpuCounters) -> CpuCounters:
        return CpuCounters(
            self.periods - other.periods,
            self.throttled_periods - other.throttled_periods,
            self.throttled_s - other.throttled_s,
        )


class Sandbox(ABC):
    """One worker's isolation, opened before the worker starts and closed after it stops."""

    kind: str  # what the rows' `isolation` says: podman, cgroup-v2, cgroup-v1, affinity

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.note = ""  # how the limits were applied, for the rows' limits_note

    @abstractmethod
    def command(self, argv: Sequence[str], writable: Sequence[Path] = ()) -> list[str]:
        """The command that starts `argv` inside this sandbox, with the caller's environment;
        what it writes under the `writable` folders outlives it (a container's other writes
        may not)."""

    def cpu_counters(self) -> CpuCounters | None:
        """CFS counters since the sandbox opened; None where this isolation keeps none."""
        return None

    def memory_peak_mb(self) -> float:
        """The highest memory use the isolation accounted; NaN where it does not account."""
        return math.nan

    def out_of_memory(self) -> bool:
        """Whether the worker was killed, or refused memory, for being over its cap."""
        return False

    def close(self) -> None:  # noqa: B027 (optional: some sandboxes make nothing)
        """Remove what the sandbox made; its worker has stopped."""


def pinned_cores(count: int) -> list[int]:
    """The first `count` CPUs this process may run on (all of them when it has fewer)."""
    return sorted(os.sched_getaffinity(0))[:count]


def confine_command(
    argv: Sequence[str],
    join: Sequence[str] = (),
    cores: int | None = None,
    address_space_mb: int | None = None,
) -> list[str]:
    """`argv` started by runners/confine.py: in the cgroups whose `cgroup.procs` files are
    `join`, pinned to `cores` CPUs, under an address-space cap, before any of its code runs."""
    options = [f"--join={procs}" for procs in join]
    if cores is not None:
        options.append("--cores=" + ",".join(map(str, pinned_cores(cores))))
    if address_space_mb is not None:
        options.append(f"--address-space-mb={address_space_mb}")
    return [sys.executable, "-I", "-S", _CONFINE, *options, "--", *argv]


class AffinitySandbox(Sandbox):
    """The fallback where no cgroup can be made: the worker pinned to ceil(cpus) cores (a
    share of a core cannot be expressed, so 0.5 CPU becomes a whole one) and its address space
    capped at the memory limit. No CFS quota, so no throttling counters; and RLIMIT_AS caps
    virtual memory, which runtimes reserve far beyond what they touch, so a model that would
    fit in the same resident memory may be refused."""

    kind = "affinity"

    def __init__(self, limits: Limits, label: str = "") -> None:
        if not hasattr(os, "sched_setaffinity"):
            raise IsolationUnavailable("this OS has no CPU affinity call")
        super().__init__(limits)
        self._cores = math.ceil(limits.cpus) if limits.cpus is not None else limits.cores
        self.note = "affinity: no CFS quota, so no throttling counters; memory as RLIMIT_AS"

    def command(self, argv: Sequence[str], writable: Sequence[Path] = ()) -> list[str]:
        return confine_command(argv, (), self._cores, self.limits.memory_mb)
