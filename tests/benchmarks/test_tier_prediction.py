"""Cross-tier prediction, the planner's real test, and the time `+experiment=tiers` takes.

Run: pytest tests/benchmarks/test_tier_prediction.py --benchmark-only -s
`bench +experiment=tiers` (MiniLM, ONNX Runtime, `slo_search` at a p99 SLO of 100 ms on three
tiers of this host: no limit, a container limited to one CPU, the `small` edge device), with
`SEARCH_POINTS` points a search rather than the preset's 3, so that each tier's capacity is
bounded finely enough to judge a prediction by; timed from start to report. Then the sweep
plan's `plan/cross_tier.csv`: each tier's capacity at the SLO predicted from each other tier's
measurement, beside the capacity measured (the highest rate met at a valid point) and the
lowest rate above it that missed the SLO, between which the capacity lies.
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench.capacity.store import Plan
from tests.conftest import checkout_env

SEARCH_POINTS = 5


def test_cross_tier_prediction_and_the_tiers_experiment(benchmark, tmp_path):
    sweep = tmp_path / "tiers"

    def run():
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bench", "+experiment=tiers", "progress=false"]
            + [f"scenario.max_points={SEARCH_POINTS}"]
            + [f"hydra.sweep.dir={sweep}"],
            cwd=tmp_path,
            env=checkout_env(),
            check=True,
            timeout=900,
        )
        return time.perf_counter() - began

    wall = benchmark.pedantic(run, rounds=1, iterations=1)
    table = Plan.read(sweep).cross_tier
    print(f"\n+experiment=tiers scenario.max_points={SEARCH_POINTS} took {wall:.0f} s on this host")
    assert not table.empty, "no cross-tier prediction: fewer than two tiers had a valid point"
    print(table.to_string(
        columns=["from_tier", "to_tier", "predicted_qps", "predicted_low_qps",
                 "predicted_high_qps", "measured_qps", "measured_ceiling_qps", "error_pct",
                 "within_measured", "cpu_factor"],
        index=False, float_format=lambda v: f"{v:.1f}",
    ))  # fmt: skip
    benchmark.extra_info["wall_s"] = wall
    benchmark.extra_info["cross_tier"] = table.to_dict("records")
    assert (sweep / "report.html").exists()
    assert len(set(table["to_tier"])) == 3, "each of the three tiers predicted from the others"
