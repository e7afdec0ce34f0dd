"""`offline`: every request at once, as MLPerf's Offline: the highest throughput."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bench.load.points import LoadPoint
from bench.load.scenarios.base import ScenarioConfig
from bench.load.shapes import Burst, Shape
from bench.registry import option
from bench.validation import at_least


@option("scenario")
@dataclass
class OfflineScenarioConfig(ScenarioConfig):
    """All requests sent at once; measures maximum throughput at `batch_size`."""

    name: str = "offline"
    # Requests to send; null sizes it from the warm-up's measured rate to fill `duration_s`.
    requests: int | None = None
    batch_size: int = 8
    min_duration_s: float = 2.0
    # The burst's latency grows by design as its queue empties, and nothing is paced.
    open_ended: ClassVar[bool] = True

    def validate(self, at: str = "scenario") -> None:
        super().validate(at)
        at_least(self.requests, 1, f"{at}.requests", nullable=True)

    def points(self) -> list[LoadPoint]:
        return [self.point(requests=self.requests)]

    @classmethod
    def shape(cls, point: LoadPoint) -> Shape:
        return Burst(point.requests)
