"""What a CPU limit below the worker's thread count costs: the p99 inflation from CFS
throttling, next to the same worker without the limit.

Run: pytest tests/benchmarks/test_container_throttling.py --benchmark-only -s

MiniLM on ONNX Runtime with 2 intra-op threads, served by the `container` strategy under Poisson
load at a moderate rate, once with `strategy.cpus=0.5` (a pod's `limits.cpu: 500m`) and once
without a CPU limit. Two threads can use up 50 ms of quota in 25 ms of wall time; the worker then
waits for the next 100 ms period with requests queued. The two variants alternate within each
round, so a noisy neighbour slows both alike; each figure is the median over rounds.
"""

from __future__ import annotations

import math
import statistics

from bench.load import LoadPoint
from tests.benchmarks.test_serving_overhead import _measure, _spread
from tests.test_container import needs_quota

ROUNDS = 3
RATE_QPS = 40.0
VARIANTS = {
    "cpus=0.5": ["strategy=container", "strategy.cpus=0.5", "backend.threads=2"],
    "no limit": ["strategy=container", "strategy.cpus=null", "backend.threads=2"],
}


@needs_quota
def test_cpu_quota_below_the_threads_inflates_p99(benchmark):
    keys = ("p50", "p99", "compute", "throttled", "throttled_s")
    figures = {name: {key: [] for key in keys} for name in VARIANTS}
    isolation = set()

    def rounds():
        for r in range(ROUNDS):
            point = LoadPoint("server", 1, 2.0, 12.0, schedule_seed=r, target_qps=RATE_QPS)
            for name, overrides in VARIANTS.items():
                stats, facts = _measure(overrides, point)
                assert stats["errors"] == 0
                isolation.add(facts["isolation"])
                f = figures[name]
                f["p50"].append(stats["latency_p50_ms"])
                f["p99"].append(stats["latency_p99_ms"])
                f["compute"].append(stats["server_compute_p50_ms"])
                # No quota, no enforcement periods: the fraction is NaN, and nothing throttled.
                throttled = facts["throttled_fraction"]
                f["throttled"].append(0.0 if math.isnan(throttled) else throttled)
                f["throttled_s"].append(facts["throttled_s"])

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    print(
        f"\nMiniLM, ONNX Runtime 2 threads, container ({', '.join(sorted(isolation))}), "
        f"server scenario at {RATE_QPS:g} qps, {ROUNDS} rounds (median [min-max]):"
    )
    print(
        f"{'limit':9} {'p50 ms':>22} {'p99 ms':>22} {'compute p50 ms':>22} "
        f"{'throttled fraction':>22} {'throttled s':>22}"
    )
    for name, f in figures.items():
        benchmark.extra_info[f"{name} p50_ms"] = round(statistics.median(f["p50"]), 2)
        benchmark.extra_info[f"{name} p99_ms"] = round(statistics.median(f["p99"]), 2)
        benchmark.extra_info[f"{name} throttled"] = round(statistics.median(f["throttled"]), 3)
        print(
            f"{name:9} {_spread(f['p50'])} {_spread(f['p99'])} {_spread(f['compute'])} "
            f"{_spread(f['throttled'])} {_spread(f['throttled_s'])}"
        )
