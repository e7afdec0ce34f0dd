"""`server`: open-loop Poisson arrivals at a target rate, as MLPerf's Server."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.load.points import LoadPoint
from bench.load.scenarios.base import ScenarioConfig
from bench.load.shapes import OpenLoop, Shape
from bench.registry import option
from bench.validation import at_least, positive


def poisson_offsets(rate_qps: float, duration_s: float, seed: int) -> np.ndarray:
    """Send offsets (seconds from the start) of a seeded Poisson process over `duration_s`."""
    rng = np.random.default_rng(seed)
    # Draw a little more than expected, then top up: the count itself is random.
    expected = rate_qps * duration_s
    gaps = rng.exponential(1.0 / rate_qps, size=int(expected + 6 * np.sqrt(expected) + 16))
    offsets = np.cumsum(gaps)
    while offsets[-1] < duration_s:
        more = np.cumsum(rng.exponential(1.0 / rate_qps, size=len(gaps))) + offsets[-1]
        offsets = np.concatenate([offsets, more])
    return offsets[offsets < duration_s]


@option("scenario")
@dataclass
class ServerScenarioConfig(ScenarioConfig):
    """Open loop: Poisson arrivals at `target_qps`, seeded, independent of completions."""

    name: str = "server"
    target_qps: float = 20.0
    # Client connections (wrk2's -c): a request due while all are busy waits for one, and its
    # send is late; latency_* still counts from the intended time. null: no limit, pure open loop.
    connections: int | None = None

    def validate(self, at: str = "scenario") -> None:
        super().validate(at)
        positive(self.target_qps, f"{at}.target_qps")
        at_least(self.connections, 1, f"{at}.connections", nullable=True)

    def points(self) -> list[LoadPoint]:
        return [self.point(target_qps=float(self.target_qps), connections=self.connections)]

    @classmethod
    def shape(cls, point: LoadPoint) -> Shape:
        length = point.warmup_s + point.duration_s
        return OpenLoop(
            poisson_offsets(point.target_qps, length, point.schedule_seed), point.connections
        )

    @classmethod
    def label(cls, point: LoadPoint) -> str:
        return f"server {point.target_qps:.4g} qps"
