"""What a response cache buys at two hit ratios, on the real MiniLM served over HTTP.

Run: pytest tests/benchmarks/test_response_cache.py --benchmark-only -s

Workloads with repeat_ratio 0.5 and 0.9 (each point's payloads its own: one to three corpus
sentences, so a miss costs what MiniLM costs on that text), served by one HTTP worker (ONNX
Runtime, one intra-op thread, one predictor thread) with and without `strategy.cache`:
- throughput at saturation: closed loop, 8 requests outstanding;
- p99 at a fixed Poisson rate that the worker without a cache sustains.

Cache on and off alternate within each round, so a noisy neighbour slows both alike; each
figure is the median over rounds, the spread beside it.
"""

from __future__ import annotations

import asyncio
import statistics

from bench.load import Driver, LoadPoint, summarize
from bench.load.payloads import PayloadIds, Payloads, Repeats, distinct_supply
from bench.models import build_model
from runners import build_runner
from tests.conftest import compose

ROUNDS = 3
RATIOS = (0.5, 0.9)
RATE_QPS = 30.0
MINILM = [
    "model=minilm", "backend=onnxruntime", "backend.threads=1", "strategy=http",
    "progress=false",
]  # fmt: skip
CACHE = {"off": [], "on": ["strategy.cache.max_entries=100000"]}


def _payloads(bundle, ratio: float, seed: int, salt: int) -> Payloads:
    make = distinct_supply(bundle.distinct_source(), 1, seed, salt)
    return Payloads(PayloadIds(Repeats(repeat_ratio=ratio), seed), make)


def _measure(cache: str, ratio: float, round_: int) -> dict:
    """Both points through one freshly started worker: saturation, then the fixed rate."""
    cfg = compose([*MINILM, *CACHE[cache], f"scenario.repeat_ratio={ratio}"])
    saturation = LoadPoint("concurrency", 1, 1.5, 6.0, schedule_seed=round_, concurrency=8)
    rate = LoadPoint("server", 1, 1.5, 10.0, schedule_seed=round_, target_qps=RATE_QPS)

    async def main():
        bundle = build_model(cfg.model)
        runner = build_runner(cfg)
        await runner.start()
        found = {}
        try:
            for name, point, salt in (("sat", saturation, 1), ("rate", rate, 2)):
                runner.begin_point()
                payloads = _payloads(bundle, ratio, round_, salt)
                found[name] = summarize(await Driver(runner, payloads).run(point), 3, 1e-3, 1)
            return found
        finally:
            await runner.stop()

    found = asyncio.run(main())
    return {
        "qps": found["sat"]["achieved_qps"],
        "sat_p99": found["sat"]["latency_p99_ms"],
        "hit": found["rate"]["cache_hit_ratio"],
        "p50": found["rate"]["latency_p50_ms"],
        "p99": found["rate"]["latency_p99_ms"],
        "hit_p50": found["rate"]["cache_hit_latency_p50_ms"],
        "miss_p50": found["rate"]["cache_miss_latency_p50_ms"],
        "errors": found["sat"]["errors"] + found["rate"]["errors"],
    }


def _spread(values: list[float]) -> str:
    if not values or any(v != v for v in values):
        return f"{'-':>22}"
    return f"{statistics.median(values):7.2f} [{min(values):6.2f}-{max(values):6.2f}]"


def test_cache_on_against_off_at_two_hit_ratios(benchmark):
    keys = ("qps", "sat_p99", "hit", "p50", "p99", "hit_p50", "miss_p50")
    figures = {(r, c): {k: [] for k in keys} for r in RATIOS for c in CACHE}

    def rounds():
        for round_ in range(ROUNDS):
            for ratio in RATIOS:
                for cache in CACHE:
                    measured = _measure(cache, ratio, round_)
                    assert measured["errors"] == 0
                    for k in keys:
                        figures[(ratio, cache)][k].append(measured[k])

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    print(
        f"\nMiniLM over HTTP, ONNX Runtime 1 thread, {ROUNDS} rounds (median [min-max]); "
        f"saturation: 8 outstanding; p99: Poisson at {RATE_QPS:g} qps"
    )
    print(
        f"{'repeat':>6} {'cache':>5} {'requests/s at sat.':>24} {'hit ratio':>22} "
        f"{'p99 ms at rate':>22} {'hit p50 ms':>22} {'miss p50 ms':>22}"
    )
    for (ratio, cache), f in figures.items():
        benchmark.extra_info[f"r{ratio}_{cache}_qps"] = round(statistics.median(f["qps"]), 1)
        benchmark.extra_info[f"r{ratio}_{cache}_p99_ms"] = round(statistics.median(f["p99"]), 2)
        print(
            f"{ratio:>6} {cache:>5} {_spread(f['qps']):>24} "
            f"{_spread(f['hit'] if cache == 'on' else [])} {_spread(f['p99'])} "
            f"{_spread(f['hit_p50'] if cache == 'on' else [])} "
            f"{_spread(f['miss_p50'] if cache == 'on' else [])}"
        )
