"""The autoscaling simulation against real runs: the same compressed traces offered for real to
N http replicas and to the planner's simulation of N fixed replicas (the same arrivals, service
times drawn from the run's own), latency per window side by side; and the HPA the planner
simulates over the same trace.

Run: pytest tests/benchmarks/test_autoscaling_validation.py --benchmark-only -s
`model=busy` (20 ms of Python per request, GIL held), `strategy=http strategy.replicas=2`
(two worker processes, client round robin: each replica has its own queue, where the
simulation has one shared queue); a flash crowd (a rate step, 15 -> 60 qps) and a diurnal cycle
(10 -> 60 qps), each one minute.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench import results
from bench.capacity.autoscaling import Hpa, fixed, outcome, simulate_hpa
from bench.capacity.queueing import Pool
from bench.run import run_benchmark
from tests.conftest import LENIENT, compose

REPLICAS = 2
SLO_MS = 100.0


def _run(tmp_path, name: str, pattern: list[str]) -> tuple[pd.Series, pd.DataFrame]:
    overrides = [
        "model=busy",
        "model.service_ms=20",
        "strategy=http",
        f"strategy.replicas={REPLICAS}",
        "scenario=trace",
        "scenario.duration_s=60",
        "scenario.window_s=5",
        "accuracy_samples=0",
        "progress=false",
        "plan.enabled=false",
        "report=false",
        *LENIENT,
        *pattern,
    ]
    folder = tmp_path / name
    run_benchmark(compose(overrides), folder)
    row = results.load(folder).iloc[0]
    log = pd.read_parquet(folder / "requests" / f"{row['point_id']}.parquet")
    return row, log


def _simulated_windows(log: pd.DataFrame, window_s: float, replicas: int) -> pd.DataFrame:
    """The run's own arrivals through `replicas` simulated workers, service times drawn from
    the run's server-side compute times; p99 per window of arrival."""
    start = log["intended"].min()
    arrivals = (log["intended"] - start).to_numpy()
    service = log.loc[log["ok"], "compute_s"].dropna().to_numpy()
    rng = np.random.default_rng(0)
    latency = Pool(replicas).serve(arrivals, rng.choice(service, size=len(arrivals)))
    window = (arrivals // window_s).astype(int)
    frame = pd.DataFrame({"window": window, "latency_ms": latency * 1e3})
    return frame.groupby("window")["latency_ms"].quantile(0.99)


def test_simulation_against_real_runs(benchmark, tmp_path):
    def measure():
        runs = {
            "flash crowd 15 -> 60 qps": _run(
                tmp_path,
                "step",
                [
                    "scenario.pattern=flash_crowd",
                    "scenario.base_qps=15",
                    "scenario.factor=4",
                    "scenario.crowd_at_s=20",
                    "scenario.crowd_s=20",
                ],
            ),
            "diurnal 10 -> 60 qps": _run(
                tmp_path,
                "day",
                ["scenario.trough_qps=10", "scenario.peak_qps=60", "scenario.period_s=60"],
            ),
        }
        for name, (row, log) in runs.items():
            real = np.asarray(row["timeline_p99_ms"])
            offered = np.asarray(row["timeline_offered_qps"])
            sim = _simulated_windows(log, 5.0, REPLICAS).reindex(range(len(real))).to_numpy()
            print(f"\n{name}: {REPLICAS} http replicas, p99 ms per 5 s window")
            print(" t s  offered qps  real p99  simulated p99")
            for i, (q, r, s) in enumerate(zip(offered, real, sim, strict=True)):
                print(f"{i * 5:4d}  {q:11.1f}  {r:8.1f}  {s:13.1f}")
            met_real = float(np.mean(real <= SLO_MS))
            met_sim = float(np.nanmean(sim <= SLO_MS))
            print(
                f"windows with p99 <= {SLO_MS:g} ms: real {met_real:.0%}, simulated {met_sim:.0%}"
            )
            start = log["intended"].min()
            arrivals = (log["intended"] - start).to_numpy()
            service = log.loc[log["ok"], "compute_s"].dropna().to_numpy()
            for label, hpa in (
                ("fixed", fixed(Hpa(REPLICAS, REPLICAS, 1.0), REPLICAS)),
                ("hpa 1-4, target 60%, cold start 1 s", Hpa(1, 4, 0.6)),
            ):
                found = outcome(simulate_hpa(arrivals, service, hpa, 1.0, SLO_MS, "p99", 60.0), hpa)
                replicas = found.timeline["replicas"].tolist()
                print(
                    f"simulated {label}: SLO met {found.slo_share:.0%} of 15 s periods, "
                    f"replicas per period {replicas}"
                )

    benchmark.pedantic(measure, rounds=1, iterations=1)
