"""`intermittent`: sparse open-loop arrivals, gaps long enough to make cold starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from bench.load.points import LoadPoint
from bench.load.scenarios.base import ScenarioConfig
from bench.load.shapes import OpenLoop, Shape
from bench.registry import option
from bench.validation import positive, require


def intermittent_offsets(gap_s: float, jitter: float, duration_s: float, seed: int) -> np.ndarray:
    """Send offsets of one request every `gap_s`, each gap drawn uniformly within
    +-`jitter` x `gap_s` (seeded); the first request goes at 0."""
    rng = np.random.default_rng(seed)
    count = int(duration_s / (gap_s * (1.0 - jitter))) + 1  # enough even if every gap is short
    gaps = gap_s * (1.0 + jitter * rng.uniform(-1.0, 1.0, size=count - 1))
    offsets = np.concatenate([[0.0], np.cumsum(gaps)])
    return offsets[offsets < duration_s]


@option("scenario")
@dataclass
class IntermittentScenarioConfig(ScenarioConfig):
    """Open loop, sparse: one request every `gap_s` (each gap drawn uniformly within
    +-`jitter` x `gap_s`, seeded). Gaps longer than a serverless keep-alive make cold starts."""

    name: str = "intermittent"
    gap_s: float = 6.0
    jitter: float = 0.5
    warmup_s: float = 0.0  # the first requests' cold starts are what this measures
    duration_s: float = 120.0
    # A request per gap: 20 take two minutes at the defaults. Stability across windows is not
    # judged (a window holds a handful of requests, cold and warm by design).
    min_duration_s: float = 30.0
    min_requests: int = 20
    sparse: ClassVar[bool] = True

    def validate(self, at: str = "scenario") -> None:
        super().validate(at)
        positive(self.gap_s, f"{at}.gap_s")
        require(
            0 <= self.jitter < 1,
            f"{at}.jitter",
            f"must be in [0, 1) (of gap_s), got {self.jitter}",
        )

    def points(self) -> list[LoadPoint]:
        return [self.point(gap_s=float(self.gap_s), jitter=float(self.jitter))]

    @classmethod
    def shape(cls, point: LoadPoint) -> Shape:
        length = point.warmup_s + point.duration_s
        return OpenLoop(
            intermittent_offsets(point.gap_s, point.jitter, length, point.schedule_seed)
        )

    @classmethod
    def label(cls, point: LoadPoint) -> str:
        return f"intermittent every {point.gap_s:g} s"
