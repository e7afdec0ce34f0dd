"""`edge`: one worker confined to a device profile (`strategy.device`): pinned to the device's
cores, capped at its memory, running the backend with the device's threads, through the same
isolation as `container`. The question it answers is whether the model fits there and meets its
SLO: a worker killed at the memory cap, or not ready in time, is the point's result ("does not
fit: ..."), recorded as such while the sweep goes on.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from runners.container import ContainerRunner
from runners.sandbox import Limits, Sandbox


class EdgeRunner(ContainerRunner):
    name = "edge"

    def __init__(self, cfg: Any) -> None:
        self.host_cores = len(os.sched_getaffinity(0))
        # The runtime's threads are the device's, whatever backend.threads says.
        served = copy.deepcopy(cfg)
        served.backend.threads = cfg.strategy.device.threads
        super().__init__(served)

    def _limits(self) -> Limits:
        device = self.cfg.strategy.device
        return Limits(cores=min(device.cores, self.host_cores), memory_mb=device.memory_mb)

    def _note(self, sandbox: Sandbox) -> str:
        device = self.cfg.strategy.device
        note = f"device {device.name}: {sandbox.note}"
        if device.cores > self.host_cores:
            note += (
                f"; the device has {device.cores} cores and this host {self.host_cores}:"
                f" capped at {self.host_cores}"
            )
        return note
