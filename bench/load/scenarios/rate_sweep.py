"""`rate_sweep`: open-loop Poisson points at each of a list of rates, lowest first: the
latency-throughput curve of a deployment under offered load (vLLM's request-rate sweep, or
Triton perf_analyzer's `--request-rate-range`), where `concurrency` gives the closed-loop one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from bench.load.points import LoadPoint
from bench.load.scenarios.base import ScenarioConfig
from bench.registry import option
from bench.validation import at_least, require


@option("scenario")
@dataclass
class RateSweepScenarioConfig(ScenarioConfig):
    """Open loop: one `server` point (Poisson, seeded) per rate in `rates`, lowest first."""

    name: str = "rate_sweep"
    rates: list[float] = field(default_factory=lambda: [10.0, 20.0, 40.0])
    # Client connections per point, as in `server`; null: unlimited.
    connections: int | None = None
    point_lists: ClassVar[tuple[str, ...]] = ("rates",)

    def validate(self, at: str = "scenario") -> None:
        super().validate(at)
        require(
            len(self.rates) > 0 and all(rate > 0 for rate in self.rates),
            f"{at}.rates",
            f"must be a non-empty list of rates > 0 (requests/s), got {list(self.rates)}",
        )
        at_least(self.connections, 1, f"{at}.connections", nullable=True)

    def points(self) -> list[LoadPoint]:
        # Each is the very point `scenario=server` measures at that rate: one shape, one label.
        return [
            self.point(scenario="server", target_qps=float(rate), connections=self.connections)
            for rate in sorted(self.rates)
        ]
