"""`bursty`: bursts of Poisson arrivals separated by silence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from bench.load.points import LoadPoint
from bench.load.scenarios.base import ScenarioConfig
from bench.load.shapes import OpenLoop, Shape
from bench.registry import option
from bench.validation import at_least, positive


def bursty_offsets(
    burst_size: int, burst_qps: float, idle_s: float, duration_s: float, seed: int
) -> np.ndarray:
    """Send offsets of bursts of `burst_size` requests, Poisson at `burst_qps` within a burst
    (seeded), each burst starting `idle_s` after the previous one's last request; the first
    burst starts at 0."""
    if idle_s <= 0:
        raise ValueError(f"idle_s: must be > 0 (bursts need a gap between them), got {idle_s}")
    rng = np.random.default_rng(seed)
    bursts, start = [], 0.0
    while start < duration_s:
        gaps = rng.exponential(1.0 / burst_qps, size=burst_size - 1)
        burst = start + np.concatenate([[0.0], np.cumsum(gaps)])
        bursts.append(burst)
        start = burst[-1] + idle_s
    offsets = np.concatenate(bursts)
    return offsets[offsets < duration_s]


@option("scenario")
@dataclass
class BurstyScenarioConfig(ScenarioConfig):
    """Open loop: bursts of `burst_size` requests arriving as a Poisson process at `burst_qps`,
    separated by `idle_s` of silence (from a burst's last request to the next's first)."""

    name: str = "bursty"
    burst_size: int = 20
    burst_qps: float = 50.0
    idle_s: float = 8.0
    warmup_s: float = 0.0
    duration_s: float = 60.0
    min_duration_s: float = 30.0
    min_requests: int = 50
    sparse: ClassVar[bool] = True

    def validate(self, at: str = "scenario") -> None:
        super().validate(at)
        at_least(self.burst_size, 1, f"{at}.burst_size")
        positive(self.burst_qps, f"{at}.burst_qps")
        positive(self.idle_s, f"{at}.idle_s")

    def points(self) -> list[LoadPoint]:
        return [
            self.point(
                burst_size=int(self.burst_size),
                burst_qps=float(self.burst_qps),
                idle_s=float(self.idle_s),
            )
        ]

    @classmethod
    def shape(cls, point: LoadPoint) -> Shape:
        length = point.warmup_s + point.duration_s
        return OpenLoop(
            bursty_offsets(
                point.burst_size, point.burst_qps, point.idle_s, length, point.schedule_seed
            )
        )

    @classmethod
    def label(cls, point: LoadPoint) -> str:
        return f"bursts of {point.burst_size}"
