"""The three shapes of load the driver knows how to issue; every scenario's points map to one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClosedLoop:
    """`concurrency` requests outstanding: each sends the next as soon as its previous returns."""

    concurrency: int


@dataclass(frozen=True)
class OpenLoop:
    """A request at each offset (seconds from the start, warm-up included), whatever the
    responses do; at most `connections` outstanding (None: no limit)."""

    offsets: np.ndarray
    connections: int | None = None


@dataclass(frozen=True)
class Burst:
    """`requests` sent at once after a closed-loop warm-up (None: sized from the warm-up's rate
    to fill the point's duration); the point lasts until the last one returns."""

    requests: int | None


Shape = ClosedLoop | OpenLoop | Burst
