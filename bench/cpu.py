"""What this machine's CPU is and can do, read from /proc/cpuinfo: facts the host fingerprint
records and that a backend's choice of kernels depends on. No stage of the pipeline: any may
import it."""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

# Integer dot-product instructions. Without one, x86 int8 kernels multiply u8 by s8 with
# `vpmaddubsw`, whose int16 sums saturate on full-range 8-bit weights.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@lru_cache(maxsize=1)
def cpu_model_and_flags() -> tuple[str, frozenset[str]]:
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def has_vnni() -> bool:
    return any(flag in cpu_model_and_flags()[1] for flag in VNNI_FLAGS)


def cpu_quota_cores() -> float | None:
    """The CPU quota this process runs under, in cores: the smallest CFS quota of its cgroup and
    of the cgroups above it (v2 `cpu.max`; v1 `cpu.cfs_quota_us` over `cpu.cfs_period_us`), as a
    container's `--cpus` or a Kubernetes CPU limit sets it. None where no quota is set or none
    can be read. A quota does not narrow the CPUs a process may run on: more threads than the
    quota's cores each get a slice, and the CFS throttles all of them together."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
        groups = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in mounts:
        _, point, fstype, options, *_ = line.split()
        if fstype == "cgroup2":
            path = next((g.split(":", 2)[2] for g in groups if g.startswith("0::")), "/")
            read = _v2_quota
        elif fstype == "cgroup" and "cpu" in options.split(","):
            path = next(
                (g.split(":", 2)[2] for g in groups if "cpu" in g.split(":", 2)[1].split(",")), "/"
            )
            read = _v1_quota
        else:
            continue
        mount = Path(point)
        folder = mount / path.lstrip("/")
        if not folder.is_dir():  # a container's own cgroup, mounted at the hierarchy's root
            folder = mount
        while True:
            quota = read(folder)
            if quota is not None:
                quotas.append(quota)
            if folder == mount:
                break
            folder = folder.parent
    return min(quotas) if quotas else None


def _v2_quota(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period
