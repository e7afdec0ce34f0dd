"""The worker in a real container: Podman, run by root with runc, limits given as
`--cpus` / `--memory`, the way `docker run` and a kubelet give them.

No registry is reachable from these machines, so there is no image to pull: the container's
root filesystem is the host's own, which carries the interpreter, the virtual environment and
the project, so nothing has to be built or copied. As an overlay (`--rootfs /:O`): a plain
`--rootfs /` fails here, because runc mounts its own /sys and cgroup tmpfs over the very paths
it then reads the container's cgroups from (with the host's root as the container's, they are
the same paths); an overlay's lower layer is the root filesystem alone, without the host's
/sys, /proc and /dev mounted on it. The container's writes land in a throw-away upper layer,
except in the folders bound through (the model cache). It gets its own mount, PID, IPC and UTS
namespaces and its own cgroups; `--network host` lets it listen on loopback where the harness
connects. runc, not crun: crun fails on these hosts' hybrid cgroup layout (v1 controllers beside
a v2 hierarchy without them). Open-file and process ulimits are lowered because the hosts' own
exceed what runc may set in a container.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from runners.cgroups import (
    cgroup_mounts,
    cgroup_name,
    cpu_counters_at,
    peak_mb_at,
    remove_stale,
    remove_tree,
    v1_mount,
    v2_hierarchy,
)
from runners.sandbox import CpuCounters, IsolationUnavailable, Limits, Sandbox, pinned_cores

# No systemd on these machines to delegate cgroups to; a file, not the journal, for events.
_GLOBAL = ["--cgroup-manager=cgroupfs", "--events-backend=file"]
_RUN = [
    "run", "--rm",
    "--interactive",  # the worker's stdin pipe: it stops when the harness dies
    "--runtime=runc",
    "--network=host",
    "--ulimit=nofile=1024:1024", "--ulimit=nproc=4096:4096",
    "--env-host",  # PYTHONPATH, the cache folders and thread settings, as for a process
]  # fmt: skip
_ROOTFS = "/:O"  # the host's root filesystem, as an overlay
_PROBE_TIMEOUT_S = 120.0
_REMOVE_TIMEOUT_S = 30.0


@functools.cache
def podman_problem() -> str | None:
    """Why Podman cannot run a container here, or None if it can (checked once, by running
    one: an installed binary says nothing about runtimes, cgroups or ulimits)."""
    podman = shutil.which("podman")
    if podman is None:
        return "podman is not installed (Debian: apt-get install podman)"
    try:
        probe = subprocess.run(
            [podman, *_GLOBAL, *_RUN, "--rootfs", _ROOTFS, "true"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"podman run did not finish within {_PROBE_TIMEOUT_S:g} s"
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["(no message)"])[-1]
        return f"podman run fails here (exit {probe.returncode}): {last}"
    return None


class PodmanSandbox(Sandbox):
    """One container, named and parented so that its cgroups can be found and read."""

    kind = "podman"

    def __init__(self, limits: Limits, label: str) -> None:
        problem = podman_problem()
        if problem is not None:
            raise IsolationUnavailable(problem)
        super().__init__(limits)
        self.name = cgroup_name(label)
        for mount in cgroup_mounts():
            remove_stale(mount)
        # Where `podman run` runs: conmon writes a file named "oom" into its working folder when
        # the container is OOM-killed, which must not land in the user's.
        self._folder = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        # cgroupfs puts the container's cgroup at <hierarchy>/<parent>/libpod-<id>; a parent
        # of our own makes it findable, and its hierarchical peak outlives the container.
        cpu_root, memory_root = v1_mount("cpu"), v1_mount("memory")
        if cpu_root is None or memory_root is None:
            cpu_root = memory_root = v2_hierarchy()
        self._cpu_parent = cpu_root / self.name
        self._memory_parent = memory_root / self.name
        self._peak_file = "memory.max_usage_in_bytes" if cpu_root != memory_root else "memory.peak"
        self.note = "podman, runc, the host's root as an overlay" + (
            f", --cpus {limits.cpus:g}" if limits.cpus is not None else ", no CPU limit"
        )
        if limits.cores is not None:
            self.note += f", pinned to {limits.cores} core{'s' if limits.cores > 1 else ''}"

    def command(self, argv: Sequence[str], writable: Sequence[Path] = ()) -> list[str]:
        limits = [f"--cgroup-parent=/{self.name}", f"--name={self.name}"]
        limits += [f"--volume={folder}:{folder}" for folder in writable]
        if self.limits.cpus is not None:
            limits.append(f"--cpus={self.limits.cpus:g}")
        if self.limits.cores is not None:
            cores = ",".join(map(str, pinned_cores(self.limits.cores)))
            limits.append(f"--cpuset-cpus={cores}")
        if self.limits.memory_mb is not None:
            # Memory and memory plus swap alike: no swap, as a kubelet runs pods.
            memory = f"{self.limits.memory_mb}m"
            limits += [f"--memory={memory}", f"--memory-swap={memory}"]
        # The worker runs in the harness's working folder, as a process would: relative paths
        # in the config (a model file) mean the same.
        limits.append(f"--workdir={os.getcwd()}")
        podman = ["podman", *_GLOBAL, *_RUN, *limits, "--rootfs", _ROOTFS, *argv]
        return ["env", f"--chdir={self._folder}", *podman]

    def cpu_counters(self) -> CpuCounters | None:
        stats = [cpu_counters_at(f) for f in self._cpu_parent.glob("*/cpu.stat")]
        present = [stat for stat in stats if stat is not None]
        return sum(present, CpuCounters()) if present else None

    def memory_peak_mb(self) -> float:
        return peak_mb_at(self._memory_parent / self._peak_file)

    def out_of_memory(self) -> bool:
        # The container and its cgroup are gone once it exits (--rm), and with them its OOM
        # count; the parent's peak remains: a container killed at its cap reached the cap.
        cap = self.limits.memory_mb
        return cap is not None and self.memory_peak_mb() >= cap - 1

    def close(self) -> None:
        """Remove the container if it outlived its `podman run` (killed), then its parents."""
        subprocess.run(
            ["podman", *_GLOBAL, "rm", "--force", "--ignore", "--time=0", self.name],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_REMOVE_TIMEOUT_S,
        )
        # A container engine makes the parent in every hierarchy, not only cpu and memory.
        for mount in cgroup_mounts():
            remove_tree(mount / self.name)
        shutil.rmtree(self._folder, ignore_errors=True)
