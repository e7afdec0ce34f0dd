"""A worker process in cgroups of its own, with the limits a kubelet sets: a CFS quota of
`cpus` x 100 ms per 100 ms period, and a hard memory cap without swap.

cgroup v2 where its hierarchy has the cpu and memory controllers, else the v1 cpu and memory
hierarchies. (These machines mount both: a v2 hierarchy with neither controller, and v1 ones
that root may write.) The worker joins its cgroups before its first instruction
(runners/confine.py), and the counters the kernel keeps there are read while it runs.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from runners.sandbox import CpuCounters, IsolationUnavailable, Limits, Sandbox, confine_command

PERIOD_US = 100_000  # the kubelet's CFS period
_REMOVE_TIMEOUT_S = 2.0


def cgroup_name(label: str) -> str:
    """A name no other run on the host picks."""
    return f"bench-{label}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def cgroup_mounts() -> list[Path]:
    """Every mounted cgroup hierarchy, v1 and v2."""
    lines = (line.split() for line in Path("/proc/self/mounts").read_text().splitlines())
    return [Path(fields[1]) for fields in lines if fields[2] in ("cgroup", "cgroup2")]


def v1_mount(controller: str) -> Path | None:
    """Where the v1 hierarchy of `controller` is mounted; None if it is not."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, point, fstype, options, *_ = line.split()
        if fstype == "cgroup" and controller in options.split(","):
            return Path(point)
    return None


def v1_hierarchy(controller: str) -> Path | None:
    """This process's cgroup in the v1 hierarchy of `controller`; None if none is mounted.
    Cgroups made below it stay inside whatever limits it already has."""
    mount = v1_mount(controller)
    if mount is None:
        return None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return mount / path.lstrip("/")
    return mount


def v2_hierarchy() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted; None if it is not."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, point, fstype, *_ = line.split()
        if fstype == "cgroup2":
            return Path(point)
    return None


def read_keyed(path: Path) -> dict[str, int]:
    """A cgroup file of `key value` lines (cpu.stat, memory.events, memory.oom_control)."""
    pairs = (line.split() for line in path.read_text().splitlines())
    return {pair[0]: int(pair[1]) for pair in pairs if len(pair) == 2}


def cpu_counters_at(stat_file: Path) -> CpuCounters | None:
    """The CFS counters in a v1 or v2 `cpu.stat`; None once the cgroup is gone."""
    try:
        stat = read_keyed(stat_file)
    except OSError:
        return None
    if "throttled_usec" in stat:  # v2
        throttled_s = stat["throttled_usec"] / 1e6
    else:  # v1, in nanoseconds
        throttled_s = stat.get("throttled_time", 0) / 1e9
    return CpuCounters(stat.get("nr_periods", 0), stat.get("nr_throttled", 0), throttled_s)


def peak_mb_at(peak_file: Path) -> float:
    """A peak-usage file (v1 memory.max_usage_in_bytes, v2 memory.peak) in MB; NaN if absent."""
    try:
        return int(peak_file.read_text()) / 2**20
    except OSError:
        return math.nan


def remove_tree(folder: Path) -> None:
    """rmdir a cgroup and the cgroups below it, deepest first, retrying while the kernel still
    counts a dying task in one; what stays busy past the timeout stays."""
    deadline = time.monotonic() + _REMOVE_TIMEOUT_S
    if not folder.is_dir():
        return
    for below in sorted(folder.glob("**/"), key=lambda p: len(p.parts), reverse=True):
        while below.exists():
            try:
                below.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)


def remove_stale(parent: Path) -> None:
    """Remove the cgroups under `parent` left by harness processes now dead (killed before they
    could stop their workers: the workers stopped with them, so the cgroups are empty)."""
    for folder in parent.glob("bench-*"):
        pid = folder.name.split("-")[-2]
        if pid.isdigit() and not _alive(int(pid)):
            remove_tree(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        pass
    return True


class _CgroupSandbox(Sandbox):
    """What the v1 and v2 sandboxes share: the worker joins `procs` files before it runs, and
    the kernel's counters are read from `cpu.stat`, a peak-usage file and an OOM-events file."""

    def __init__(self, limits: Limits, cpu_stat: Path, peak: Path, oom_events: Path) -> None:
        super().__init__(limits)
        self.note = _quota_note(limits)
        self._cpu_stat, self._peak, self._oom_events = cpu_stat, peak, oom_events
        self._made: list[Path] = []
        self._procs: list[Path] = []

    def _make(self, folder: Path) -> None:
        remove_stale(folder.parent)
        folder.mkdir()
        self._made.append(folder)
        self._procs.append(folder / "cgroup.procs")

    def command(self, argv: Sequence[str], writable: Sequence[Path] = ()) -> list[str]:
        return confine_command(argv, [str(p) for p in self._procs], self.limits.cores)

    def cpu_counters(self) -> CpuCounters | None:
        return cpu_counters_at(self._cpu_stat)

    def memory_peak_mb(self) -> float:
        return peak_mb_at(self._peak)

    def out_of_memory(self) -> bool:
        try:
            return read_keyed(self._oom_events).get("oom_kill", 0) > 0
        except OSError:
            return False

    def close(self) -> None:
        for folder in self._made:
            remove_tree(folder)


class CgroupV1Sandbox(_CgroupSandbox):
    """A cgroup in the v1 cpu hierarchy (the quota) and one in the memory hierarchy (the cap)."""

    kind = "cgroup-v1"

    def __init__(self, limits: Limits, label: str) -> None:
        cpu_root, memory_root = v1_hierarchy("cpu"), v1_hierarchy("memory")
        if cpu_root is None or memory_root is None:
            raise IsolationUnavailable("no cgroup v1 cpu and memory hierarchies are mounted")
        name = cgroup_name(label)
        cpu, memory = cpu_root / name, memory_root / name
        peak, oom_events = memory / "memory.max_usage_in_bytes", memory / "memory.oom_control"
        super().__init__(limits, cpu / "cpu.stat", peak, oom_events)
        try:
            self._make(cpu)
            self._make(memory)
            if limits.cpus is not None:
                (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (cpu / "cpu.cfs_quota_us").write_text(str(round(limits.cpus * PERIOD_US)))
            if limits.memory_mb is not None:
                cap = str(limits.memory_mb * 2**20)
                (memory / "memory.limit_in_bytes").write_text(cap)
                # Memory plus swap capped at the same value: no swap, as a kubelet runs pods.
                if (memory / "memory.memsw.limit_in_bytes").exists():
                    (memory / "memory.memsw.limit_in_bytes").write_text(cap)
        except OSError as exc:
            self.close()
            where = f"{cpu_root} and {memory_root}"
            raise IsolationUnavailable(f"cannot make a cgroup in {where}: {exc}") from None


class CgroupV2Sandbox(_CgroupSandbox):
    """One cgroup in the v2 hierarchy, with cpu.max and memory.max."""

    kind = "cgroup-v2"

    def __init__(self, limits: Limits, label: str) -> None:
        root = v2_hierarchy()
        wanted = {"cpu", "memory"}
        if root is None or not wanted <= set((root / "cgroup.controllers").read_text().split()):
            raise IsolationUnavailable("the cgroup v2 hierarchy has no cpu and memory controllers")
        folder = root / cgroup_name(label)
        # memory.peak: Linux 5.19 and later.
        super().__init__(
            limits, folder / "cpu.stat", folder / "memory.peak", folder / "memory.events"
        )
        try:
            # Made at the root: a v2 cgroup holding processes (this one's own) may not hand
            # controllers to its children; the root may.
            (root / "cgroup.subtree_control").write_text("+cpu +memory")
            self._make(folder)
            if limits.cpus is not None:
                quota = round(limits.cpus * PERIOD_US)
                (folder / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            if limits.memory_mb is not None:
                (folder / "memory.max").write_text(str(limits.memory_mb * 2**20))
                if (folder / "memory.swap.max").exists():
                    (folder / "memory.swap.max").write_text("0")
        except OSError as exc:
            self.close()
            raise IsolationUnavailable(f"cannot make a cgroup in {root}: {exc}") from None


def _quota_note(limits: Limits) -> str:
    quota = (
        "no CPU quota"
        if limits.cpus is None
        else f"CFS quota {limits.cpus * PERIOD_US / 1e3:g} ms per {PERIOD_US / 1e3:g} ms period"
    )
    if limits.cores is None:
        return quota
    return f"{quota}, pinned to {limits.cores} core{'s' if limits.cores > 1 else ''}"
