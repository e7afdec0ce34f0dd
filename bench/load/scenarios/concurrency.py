"""`concurrency`: closed-loop sweeps, N requests outstanding per point."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from bench.load.points import LoadPoint
from bench.load.scenarios.base import ScenarioConfig
from bench.load.shapes import ClosedLoop, Shape
from bench.registry import option
from bench.validation import require


@option("scenario")
@dataclass
class ConcurrencyScenarioConfig(ScenarioConfig):
    """Closed loop: N requests outstanding; one load point per entry of `levels`."""

    name: str = "concurrency"
    levels: list[int] = field(default_factory=lambda: [1, 2, 4])
    point_lists: ClassVar[tuple[str, ...]] = ("levels",)

    def validate(self, at: str = "scenario") -> None:
        super().validate(at)
        require(
            len(self.levels) > 0 and all(level >= 1 for level in self.levels),
            f"{at}.levels",
            f"must be a non-empty list of integers >= 1, got {list(self.levels)}",
        )

    def points(self) -> list[LoadPoint]:
        return [self.point(concurrency=int(level)) for level in self.levels]

    @classmethod
    def shape(cls, point: LoadPoint) -> Shape:
        return ClosedLoop(point.concurrency or 1)

    @classmethod
    def label(cls, point: LoadPoint) -> str:
        return f"concurrency {point.concurrency}"
