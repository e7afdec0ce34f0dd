"""How much load the driver itself can generate, and what it adds to each request.

Run: pytest tests/benchmarks --benchmark-only -s
The figures are printed and stored in the benchmark's extra_info (`--benchmark-json FILE`).
"""

from __future__ import annotations

import asyncio
import statistics
import time

import numpy as np

from bench.load import Driver, LoadPoint, summarize
from bench.load.sut import Request, Response, Runner, RunnerFacts
from runners.direct import DirectRunner
from tests.synthetic import SleepPredictor, direct_cfg

_EMPTY = np.zeros(0, dtype=np.float32)


class NullRunner(Runner):
    """Answers in the event loop at once: what is left is the driver's own cost."""

    name = "null"

    async def start(self) -> None: ...

    async def infer(self, request: Request) -> Response:
        await asyncio.sleep(0)  # one pass through the event loop, as any real runner makes
        return Response(_EMPTY, 0.0, 0.0)

    async def stop(self) -> None: ...

    @property
    def facts(self) -> RunnerFacts:
        return RunnerFacts()


def _runner(kind: str) -> Runner:
    if kind == "null":
        return NullRunner()
    return DirectRunner.from_predictor(direct_cfg(1), SleepPredictor(0.0))


def _point(**kw) -> LoadPoint:
    return LoadPoint(batch_size=1, schedule_seed=0, warmup_s=0.3, **kw)


def _drive(kind: str, point: LoadPoint) -> dict:
    async def main():
        runner = _runner(kind)
        await runner.start()
        try:
            return await Driver(runner, [[np.zeros(4, np.float32)]]).run(point)
        finally:
            await runner.stop()

    return summarize(asyncio.run(main()), 3, 1e-3, 1)


def test_per_request_overhead(benchmark):
    """Closed loop, one outstanding, zero-work predictor: seconds per request, null runner
    (driver only) and direct runner (driver + thread-pool hop), interleaved."""
    point = _point(scenario="single_stream", duration_s=1.5, concurrency=1)
    per_request = {"null": [], "direct": []}
    for _ in range(3):
        for kind in per_request:
            stats = _drive(kind, point)
            per_request[kind].append(1e6 / stats["achieved_qps"])
    stats = benchmark.pedantic(_drive, args=("direct", point), rounds=1, iterations=1)
    per_request["direct"].append(1e6 / stats["achieved_qps"])
    medians = {k: statistics.median(v) for k, v in per_request.items()}
    benchmark.extra_info.update({f"{k}_us_per_request": round(v, 1) for k, v in medians.items()})
    print(
        f"\nper-request overhead, median of {len(per_request['null'])}+ runs: "
        f"driver only {medians['null']:.1f} us, driver + direct runner "
        f"{medians['direct']:.1f} us ({medians['direct'] / medians['null']:.1f}x)"
    )


def test_highest_server_rate_with_few_late_sends(benchmark):
    """The highest Poisson rate the driver offers with under 1% of sends over 1 ms late,
    against the direct runner with a zero-work predictor."""
    rates = [250, 500, 1000, 2000, 4000, 6000, 8000, 12000, 16000]
    sustained, table = 0, []

    def sweep():
        nonlocal sustained
        for rate in rates:
            stats = _drive("direct", _point(scenario="server", duration_s=2.0, target_qps=rate))
            table.append(
                (
                    rate,
                    stats["achieved_qps"],
                    stats["late_send_fraction"],
                    stats["send_lateness_p99_ms"],
                    stats["latency_p99_ms"],
                )
            )
            if stats["late_send_fraction"] >= 0.01 or stats["achieved_qps"] < 0.9 * rate:
                break
            sustained = rate

    started = time.perf_counter()
    benchmark.pedantic(sweep, rounds=1, iterations=1)
    benchmark.extra_info["max_server_qps_under_1pct_late"] = sustained
    benchmark.extra_info["sweep"] = table
    print(
        f"\nserver rates (target, achieved, late fraction, lateness p99 ms, latency p99 ms) "
        f"in {time.perf_counter() - started:.0f} s:"
    )
    for rate, achieved, late, lateness, p99 in table:
        print(f"  {rate:6d} {achieved:8.1f} {late:7.4f} {lateness:7.3f} {p99:8.3f}")
    print(f"highest rate with < 1% of sends over 1 ms late: {sustained} qps")
    assert sustained > 0, "the driver could not sustain even the lowest rate"
