"""`slo_search`: the highest Poisson rate whose latency percentile meets the SLO, or, for a
generative model with TTFT and TPOT SLOs (`slo_ttft_ms`, `slo_tpot_ms`), whose goodput does: at
least `slo_percentile` of its requests met both (the search then steers by the share that
missed, against the share allowed to).

A closed-loop probe estimates the saturation throughput; then each `server` point's rate is
chosen from the points measured so far (`bench.load.slo_search`: small pure functions over the
measured history, which the planner reads too).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from bench.load.points import LoadPoint
from bench.load.scenarios.base import ScenarioConfig
from bench.load.slo_search import (
    PROBE_CONCURRENCY,
    Trial,
    attainment_of,
    goodput_passed,
    next_rate,
    passed,
)
from bench.registry import option
from bench.validation import at_least, positive, require


@option("scenario")
@dataclass
class SloSearchScenarioConfig(ScenarioConfig):
    """The highest Poisson rate whose `slo_percentile` latency meets `slo_ms`: a closed-loop
    probe estimates saturation, then `server` points narrow the bracket."""

    name: str = "slo_search"
    slo_ms: float | None = 100.0
    # Stop when the highest passing and lowest failing rates are this close (relative).
    tolerance: float = 0.05
    max_points: int = 8  # server points, not counting the probe
    # Client connections per server point, as in `server`; null: unlimited.
    connections: int | None = None

    def validate(self, at: str = "scenario") -> None:
        super().validate(at)
        require(
            self.slo_ms is not None or self.generative_slos,
            f"{at}.slo_ms",
            "slo_search needs an SLO to search for: set scenario.slo_ms, or for a generative "
            "model scenario.slo_ttft_ms and/or scenario.slo_tpot_ms",
        )
        positive(self.tolerance, f"{at}.tolerance")
        at_least(self.max_points, 1, f"{at}.max_points")
        at_least(self.connections, 1, f"{at}.connections", nullable=True)

    def next_point(self, measured: Sequence[dict]) -> LoadPoint | None:
        probe = self.point(scenario="concurrency", concurrency=PROBE_CONCURRENCY)
        rows = {json.dumps(json.loads(r["point"]), sort_keys=True): r for r in measured}
        probe_row = rows.get(json.dumps(probe.as_dict(), sort_keys=True))
        if probe_row is None:
            return probe
        if probe_row.get("status") != "measured":
            return None  # no saturation estimate to search from; the failed probe says why
        percentile = str(self.slo_percentile)
        servers = [r for r in measured if json.loads(r["point"])["scenario"] == "server"]
        if self.generative_slos:
            # Steered by the share of requests that missed, against the share allowed to.
            limit = 1.0 - attainment_of(percentile)
            trials = [
                Trial(
                    rate=r["target_qps"],
                    percentile_ms=1.0 - r.get("slo_attainment", float("nan")),
                    passed=goodput_passed(r, percentile, self.max_late_fraction),
                )
                for r in servers
            ]
        else:
            limit = self.slo_ms
            trials = [
                Trial(
                    rate=r["target_qps"],
                    percentile_ms=r.get(f"latency_{percentile}_ms", float("nan")),
                    passed=passed(r, self.slo_ms, percentile, self.max_late_fraction),
                )
                for r in servers
            ]
        rate = next_rate(trials, limit, probe_row["achieved_qps"], self.tolerance, self.max_points)
        if rate is None:
            return None
        return self.point(
            scenario="server", target_qps=round(rate, 3), connections=self.connections
        )
