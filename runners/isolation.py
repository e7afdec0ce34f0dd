"""Choosing a worker's isolation (`strategy.isolation`): a named one, or with `auto` the first
that works here of a container engine, the worker's own cgroups, and CPU affinity."""

from __future__ import annotations

from collections.abc import Callable

from bench.load.sut import RunnerError
from runners.cgroups import CgroupV1Sandbox, CgroupV2Sandbox
from runners.podman import PodmanSandbox
from runners.sandbox import AffinitySandbox, IsolationUnavailable, Limits, Sandbox

# Strongest first. cgroup v2 before v1: where a host offers both, v2 is the one it manages.
_KINDS: dict[str, list[Callable[[Limits, str], Sandbox]]] = {
    "podman": [PodmanSandbox],
    "cgroup": [CgroupV2Sandbox, CgroupV1Sandbox],
    "affinity": [AffinitySandbox],
}


def open_sandbox(isolation: str, limits: Limits, label: str) -> Sandbox:
    """A sandbox for one worker; RunnerError if the isolation named cannot work here. With
    `auto`, its note says which stronger ones were passed over, and why."""
    names = list(_KINDS) if isolation == "auto" else [isolation]
    passed_over: list[tuple[str, str]] = []
    for name in names:
        for make in _KINDS[name]:
            try:
                sandbox = make(limits, label)
            except IsolationUnavailable as exc:
                passed_over.append((name, str(exc)))
                continue
            weaker_than = [f"not {other}: {why}" for other, why in passed_over if other != name]
            if weaker_than:
                sandbox.note += f" ({'; '.join(weaker_than)})"
            return sandbox
    reasons = "; ".join(why for _, why in passed_over)
    raise RunnerError(
        f"strategy.isolation={isolation} cannot work here: {reasons}; "
        "strategy.isolation=auto picks what can"
    )
