"""What the workers' Prometheus metrics cost on serving: p50, p99 and requests/s over HTTP with
`/metrics` on (scraped every second, four to fifteen times as often as a Prometheus usually
does) and off (`strategy.metrics=false`).

Run: pytest tests/benchmarks/test_metrics_overhead.py --benchmark-only -s

The MLP on torch, a model of well under a millisecond, so that what serving adds per request
shows as much as it can (a real model's milliseconds hide it). Closed loop, 8 outstanding: the
worker saturated, so requests/s is its capacity. The two alternate within each round, so a
noisy neighbour slows a round alike; each figure is the median over rounds, the spread beside.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import urllib.request

from bench.load import Driver, LoadPoint, summarize
from bench.models import build_model
from runners import build_runner
from tests.conftest import compose

ROUNDS = 5
SCRAPE_EVERY_S = 1.0
VARIANTS = {"metrics on": "strategy.metrics=true", "metrics off": "strategy.metrics=false"}


def _measure(override: str, point: LoadPoint) -> tuple[dict, int]:
    """One point through a fresh HTTP worker; its statistics and the scrapes taken meanwhile."""
    cfg = compose(["model=mlp", "strategy=http", "progress=false", override])

    async def main():
        bundle = build_model(cfg.model)
        payloads = [bundle.samples(1, i) for i in range(64)]
        runner = build_runner(cfg)
        await runner.start()
        scrapes = 0

        async def scrape() -> None:
            nonlocal scrapes
            source = runner.metrics_source()
            while source is not None:
                await asyncio.sleep(SCRAPE_EVERY_S)
                for url in source.urls:
                    await asyncio.to_thread(lambda u=url: urllib.request.urlopen(u).read())
                    scrapes += 1

        scraper = asyncio.create_task(scrape())
        try:
            return await Driver(runner, payloads).run(point), scrapes
        finally:
            scraper.cancel()
            await runner.stop()

    measurement, scrapes = asyncio.run(main())
    return summarize(measurement, 3, 1e-3, 1), scrapes


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.2f} [{min(values):7.2f}-{max(values):7.2f}]"


def test_metrics_overhead_on_serving(benchmark):
    figures = {name: {"qps": [], "p50": [], "p99": []} for name in VARIANTS}
    scraped = {name: 0 for name in VARIANTS}

    def rounds():
        for r in range(ROUNDS):
            point = LoadPoint("concurrency", 1, 1.0, 6.0, schedule_seed=r, concurrency=8)
            order = list(VARIANTS.items())
            for name, override in order if r % 2 == 0 else order[::-1]:
                stats, scrapes = _measure(override, point)
                assert stats["errors"] == 0
                figures[name]["qps"].append(stats["achieved_qps"])
                figures[name]["p50"].append(stats["latency_p50_ms"])
                figures[name]["p99"].append(stats["latency_p99_ms"])
                scraped[name] += scrapes

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    print(f"\nMLP over HTTP, 8 outstanding, {ROUNDS} rounds (median [min-max]):")
    print(f"{'':12} {'requests/s':>26} {'p50 ms':>24} {'p99 ms':>24} {'scrapes':>8}")
    for name, f in figures.items():
        for key in ("qps", "p50", "p99"):
            benchmark.extra_info[f"{name}_{key}"] = round(statistics.median(f[key]), 3)
        print(
            f"{name:12} {_spread(f['qps']):>26} {_spread(f['p50']):>24} "
            f"{_spread(f['p99']):>24} {scraped[name]:8}"
        )
    on, off = figures["metrics on"], figures["metrics off"]
    print(
        f"on/off: requests/s {statistics.median(on['qps']) / statistics.median(off['qps']):.3f}, "
        f"p50 {statistics.median(on['p50']) / statistics.median(off['p50']):.3f}, "
        f"p99 {statistics.median(on['p99']) / statistics.median(off['p99']):.3f}"
    )


def test_the_metrics_cost_per_request_and_per_scrape(benchmark):
    """The worker's own bookkeeping, alone: counting and timing one request (what each request
    pays on the event loop's thread), and writing the exposition (what each scrape costs)."""
    from runners.serving import ServingCore
    from runners.worker_metrics import WorkerMetrics

    identity = {"backend": "torch", "optimization": "none", "precision": "fp32"}
    identity |= {"provider": "torch-cpu", "fingerprint": "0" * 16}
    metrics = WorkerMetrics("mlp", ServingCore(1), 0.1, lambda: identity)

    def one_request() -> None:
        metrics.received()
        metrics.served(0.002, 0.0005, 0.001)

    benchmark(one_request)
    per_request_us = benchmark.stats.stats.median * 1e6
    rounds = 200
    began = time.perf_counter()
    for _ in range(rounds):
        metrics.exposition()
    per_scrape_ms = (time.perf_counter() - began) / rounds * 1e3
    benchmark.extra_info["per_request_us"] = round(per_request_us, 2)
    benchmark.extra_info["per_scrape_ms"] = round(per_scrape_ms, 3)
    print(f"\nper request: {per_request_us:.2f} us (median); per scrape: {per_scrape_ms:.3f} ms")
