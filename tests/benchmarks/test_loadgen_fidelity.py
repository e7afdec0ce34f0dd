"""The standing check of the load driver: MLPerf LoadGen and the harness drive the same system
under test, and the harness must report what LoadGen reports.

Run: pytest tests/benchmarks/test_loadgen_fidelity.py --benchmark-only -s

Two systems under test, each `direct` (in-process, one predictor thread, one intra-op thread):
`model=busy` busy-waiting 2 ms in Python (the GIL held, as pure-Python pre- and
post-processing holds it) and the same sleeping 2 ms (the GIL released). Each at 40% and 80% of
its measured service rate, Poisson arrivals (LoadGen's Server scenario, the harness's `server`),
`ROUNDS` interleaved rounds; figures are medians over rounds. Latency is from the scheduled send
to completion in both. Printed: p50, p99 and mean of each, the harness's delta to LoadGen, and
each side's verdict (LoadGen's VALID/INVALID, the harness's with its reasons).
"""

from __future__ import annotations

import asyncio
import statistics
import time

from bench.load import Driver, LoadPoint, judge, summarize
from bench.load.scenarios.server import ServerScenarioConfig
from runners.direct import DirectRunner
from runners.serving import build_from_config
from tests.conftest import compose
from tests.loadgen_sut import run_server

ROUNDS = 3
DURATION_S = 15.0
WARMUP_S = 1.0
LOADS = (0.4, 0.8)
SUTS = {
    "GIL held (busy-wait)": ["model.holds_gil=true"],
    "GIL released (sleep)": ["model.holds_gil=false"],
}
_BASE = [
    "model=busy",
    "model.service_ms=2",
    "backend=torch",
    "backend.threads=1",
    "strategy=direct",
    "strategy.workers=1",
    "progress=false",
]


def _service_s(predictor, payload) -> float:
    """The predictor's own time per request, alone: the median of 200 calls."""
    times = []
    for _ in range(200):
        began = time.perf_counter()
        predictor.predict(payload)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _harness(runner, payloads, rate: float, seed: int) -> dict:
    sc = ServerScenarioConfig(target_qps=rate, duration_s=DURATION_S, warmup_s=WARMUP_S)
    point = LoadPoint("server", 1, WARMUP_S, DURATION_S, schedule_seed=seed, target_qps=rate)

    async def main():
        return await Driver(runner, payloads).run(point)

    measurement = asyncio.run(main())
    stats = summarize(measurement, sc.stability_windows, sc.late_send_ms / 1e3, 1)
    verdict = judge(stats, sc)
    return {
        "p50": stats["latency_p50_ms"],
        "p99": stats["latency_p99_ms"],
        "mean": stats["latency_mean_ms"],
        "valid": verdict.valid,
        "why": "; ".join(verdict.reasons),
    }


def _loadgen(runner, payloads, rate: float, seed: int) -> dict:
    result = run_server(runner, payloads, rate, DURATION_S, seed)
    return {
        "p50": result.p50_ms,
        "p99": result.p99_ms,
        "mean": result.mean_ms,
        "valid": result.valid,
        "why": "",
    }


def _started(overrides: list[str]):
    cfg = compose([*_BASE, *overrides])
    predictor = build_from_config(cfg)
    payloads = [predictor.bundle.samples(1, i) for i in range(64)]
    runner = DirectRunner.from_predictor(cfg, predictor)
    asyncio.run(runner.start())  # the core's pool outlives the loop: runs go in their own
    return runner, predictor, payloads


def test_harness_against_loadgen(benchmark):
    figures: dict = {}
    services = {}

    def rounds():
        systems = {name: _started(overrides) for name, overrides in SUTS.items()}
        for name, (_, predictor, payloads) in systems.items():
            services[name] = _service_s(predictor, payloads[0])
        for r in range(ROUNDS):
            for name, (runner, _, payloads) in systems.items():
                for load in LOADS:
                    rate = load / services[name]
                    for tool, drive in (("loadgen", _loadgen), ("harness", _harness)):
                        key = (name, load, tool)
                        figures.setdefault(key, []).append(drive(runner, payloads, rate, r))
        for runner, _, _ in systems.values():
            asyncio.run(runner.stop())

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    print(
        f"\nLoadGen (Server) and the harness (server) on the same SUT, direct, one predictor "
        f"thread; {ROUNDS} interleaved rounds of {DURATION_S:g} s, medians (ms):"
    )
    header = (
        f"{'system under test':22} {'load':>5} {'rate':>6} {'metric':>6} "
        f"{'LoadGen':>8} {'harness':>8} {'delta':>7}"
    )
    print(header)
    for name in SUTS:
        for load in LOADS:
            lg_runs, h_runs = figures[(name, load, "loadgen")], figures[(name, load, "harness")]
            rate = load / services[name]
            for metric in ("p50", "p99", "mean"):
                ref = statistics.median(run[metric] for run in lg_runs)
                got = statistics.median(run[metric] for run in h_runs)
                delta = (got - ref) / ref
                benchmark.extra_info[f"{name} {load:.0%} {metric} delta"] = round(delta, 4)
                print(
                    f"{name:22} {load:5.0%} {rate:6.0f} {metric:>6} {ref:8.3f} {got:8.3f} "
                    f"{delta:+7.1%}"
                )
            lg_valid = sum(run["valid"] for run in lg_runs)
            h_valid = sum(run["valid"] for run in h_runs)
            why = "; ".join(dict.fromkeys(run["why"] for run in h_runs if run["why"]))
            print(
                f"{'':22} verdicts: LoadGen {lg_valid}/{len(lg_runs)} VALID, harness "
                f"{h_valid}/{len(h_runs)} VALID{(': ' + why) if why else ''}"
            )
    print("service time alone: " + ", ".join(f"{n} {s * 1e3:.3f} ms" for n, s in services.items()))
