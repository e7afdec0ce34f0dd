"""The standing check of the load driver: MLPerf LoadGen and the harness drive the same system
under test, and the harness must report what LoadGen reports.

Run: pytest tests/benchmarks/test_loadgen_fidelity.py --benchmark-only -s

Two systems under test, each `direct` (in-process, one predictor thread, one intra-op thread):
`model=busy` busy-waiting 2 ms in Python (the GIL held, as pure-Python pre- and
post-processing holds it) and the same sleeping 2 ms (the GIL released). Each at 40% and 80% of
its measured service rate, `ROUNDS` interleaved rounds; figures are medians over rounds.

Both tools face the same arrivals: each round LoadGen runs its Server scenario (Poisson, its
seed the round's), and the harness replays the times LoadGen schedules (drawn from LoadGen's
seed, `tests.loadgen_sut.server_schedule`, which tests/test_loadgen_sut.py checks against
LoadGen's own trace), as a `trace` point judged by the `server` scenario's rules, with no
warm-up: LoadGen has none. The two take turns going first (LoadGen in even rounds, the harness
in odd ones, checked afterwards against what LoadGen drew), so a host that drifts between a
round's two runs favours neither tool. At 80% load the p99 of a 15 s point swings by well
over 10% from one Poisson draw to another; with one schedule for both, what is left between
them is the driver, and the host's drift between the two runs (each round prints the model's
compute p50 under each, to tell). Latency is from the scheduled send to completion in both.
Printed: p50, p99 and mean of each (medians over rounds), the harness's delta to LoadGen, the
median of the rounds' paired deltas and each round's, and each side's verdicts (LoadGen's
VALID/INVALID, the harness's with its reasons).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.load import Driver, judge, summarize
from bench.load.scenarios.server import ServerScenarioConfig
from bench.load.scenarios.trace import TraceScenarioConfig
from runners.direct import DirectRunner
from runners.serving import build_from_config
from tests.conftest import compose
from tests.loadgen_sut import run_server, schedule_seed, server_schedule

ROUNDS = 8
DURATION_S = 7.0
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


def _harness(runner, payloads, rate: float, scheduled_s: np.ndarray) -> dict:
    """The harness replaying `scheduled_s` (LoadGen's arrivals), judged as a `server` point."""
    sc = ServerScenarioConfig(target_qps=rate, duration_s=DURATION_S, warmup_s=0.0)
    with tempfile.TemporaryDirectory(prefix="loadgen-schedule-") as folder:
        path = Path(folder) / "arrivals.csv"
        path.write_text("timestamp_s\n" + "".join(f"{t!r}\n" for t in scheduled_s.tolist()))
        (point,) = TraceScenarioConfig(path=str(path), warmup_s=0.0).points()

        async def main():
            return await Driver(runner, payloads).run(point)

        measurement = asyncio.run(main())
    stats = summarize(measurement, sc.stability_windows, sc.late_send_ms / 1e3, 1)
    verdict = judge(stats, sc)
    why = "; ".join(verdict.reasons)
    if not verdict.valid:
        why += " (window p50s " + "/".join(f"{v:.2f}" for v in stats["window_p50_ms"]) + " ms)"
    return {
        "p50": stats["latency_p50_ms"],
        "p99": stats["latency_p99_ms"],
        "mean": stats["latency_mean_ms"],
        "compute": stats["server_compute_p50_ms"],
        "valid": verdict.valid,
        "why": why,
    }


def _loadgen(runner, payloads, rate: float, seed: int) -> tuple[dict, np.ndarray]:
    """LoadGen's figures, and the arrival times it scheduled."""
    result = run_server(runner, payloads, rate, DURATION_S, seed)
    figures = {
        "p50": result.p50_ms,
        "p99": result.p99_ms,
        "mean": result.mean_ms,
        "compute": result.compute_p50_ms,
        "valid": result.valid,
        "why": "",
    }
    return figures, result.scheduled_s


def _expected_schedule(rate: float, seed: int) -> np.ndarray:
    """The arrivals LoadGen's Server scenario will schedule over `DURATION_S` with `seed`."""
    drawn = server_schedule(rate, schedule_seed(seed), int(rate * DURATION_S * 2) + 200)
    return drawn[drawn < DURATION_S]


def _same_schedule(replayed: np.ndarray, drawn: np.ndarray) -> None:
    """LoadGen issued the schedule the harness replayed before it (its count may end a query or
    two apart, where its own rule for how many to issue ends the run)."""
    shared = min(len(replayed), len(drawn))
    assert abs(len(replayed) - len(drawn)) <= 2, (len(replayed), len(drawn))
    assert np.array_equal(replayed[:shared], drawn[:shared]), "LoadGen drew another schedule"


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
                    if r % 2:  # the harness first, on the schedule LoadGen will draw
                        scheduled = _expected_schedule(rate, r)
                        replayed = _harness(runner, payloads, rate, scheduled)
                        reference, drawn = _loadgen(runner, payloads, rate, r)
                        _same_schedule(scheduled, drawn)
                    else:
                        reference, scheduled = _loadgen(runner, payloads, rate, r)
                        replayed = _harness(runner, payloads, rate, scheduled)
                    figures.setdefault((name, load, "loadgen"), []).append(reference)
                    figures.setdefault((name, load, "harness"), []).append(replayed)
        for runner, _, _ in systems.values():
            asyncio.run(runner.stop())

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    print(
        f"\nLoadGen (Server) and the harness (replaying LoadGen's arrivals) on the same SUT, "
        f"direct, one predictor thread; {ROUNDS} interleaved rounds of {DURATION_S:g} s, "
        f"medians (ms):"
    )
    header = (
        f"{'system under test':22} {'load':>5} {'rate':>6} {'metric':>6} "
        f"{'LoadGen':>8} {'harness':>8} {'delta':>7} {'paired':>7}  each round's (one schedule)"
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
                rounds = [
                    (h[metric] - g[metric]) / g[metric]
                    for g, h in zip(lg_runs, h_runs, strict=True)
                ]
                paired = statistics.median(rounds)
                benchmark.extra_info[f"{name} {load:.0%} {metric} paired delta"] = round(paired, 4)
                print(
                    f"{name:22} {load:5.0%} {rate:6.0f} {metric:>6} {ref:8.3f} {got:8.3f} "
                    f"{delta:+7.1%} {paired:+7.1%}  " + " ".join(f"{d:+.1%}" for d in rounds)
                )
            compute = " ".join(
                f"{g['compute']:.3f}/{h['compute']:.3f}"
                for g, h in zip(lg_runs, h_runs, strict=True)
            )
            print(f"{'':22} compute p50 each round, LoadGen/harness (the host's drift): {compute}")
            lg_valid = sum(run["valid"] for run in lg_runs)
            h_valid = sum(run["valid"] for run in h_runs)
            why = "; ".join(dict.fromkeys(run["why"] for run in h_runs if run["why"]))
            print(
                f"{'':22} verdicts: LoadGen {lg_valid}/{len(lg_runs)} VALID, harness "
                f"{h_valid}/{len(h_runs)} VALID{(': ' + why) if why else ''}"
            )
    print("service time alone: " + ", ".join(f"{n} {s * 1e3:.3f} ms" for n, s in services.items()))
