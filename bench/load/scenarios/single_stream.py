"""`single_stream`: one request at a time, as MLPerf's SingleStream."""

from __future__ import annotations

from dataclasses import dataclass

from bench.load.points import LoadPoint
from bench.load.scenarios.base import ScenarioConfig
from bench.load.shapes import ClosedLoop, Shape
from bench.registry import option


@option("scenario")
@dataclass
class SingleStreamScenarioConfig(ScenarioConfig):
    """One request at a time; the next is sent when the previous completes."""

    name: str = "single_stream"

    def points(self) -> list[LoadPoint]:
        return [self.point(concurrency=1)]

    @classmethod
    def shape(cls, point: LoadPoint) -> Shape:
        return ClosedLoop(1)
