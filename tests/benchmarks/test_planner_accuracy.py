"""The planner's predicted capacity at the SLO against capacity measured for real, for 1 and 2
replicas on this host.

Run: pytest tests/benchmarks/test_planner_accuracy.py --benchmark-only -s
MiniLM on ONNX Runtime, one intra-op thread per replica, served `direct` by 1 or 2 workers
sharing one queue (the M/G/c the planner simulates). Measured: `slo_search`, the highest Poisson
rate whose p99 met the SLO at a VALID point, 15 s points; beside it the lowest rate above that
failed (the SLO or the verdict), between which the capacity lies. Predicted: the
planner's simulation driven by the service times of the one-replica search (the planner's own
choice of samples: its valid open-loop points nearest capacity), on the host itself, by the
planner's own rule: factor 1 in the band of a `measured` server (MEASURED_BAND), times the core
sharing (2 workers busy on 2 cores against the 1 measured, from the model's own probe,
`model_core_sharing`), at the slowest speed the host served the one-replica search's points at,
the band's high end at the fastest (`Scale.drifted`).
"""

from __future__ import annotations

import json

import pandas as pd

from bench import results
from bench.capacity.measured import measured_configs, measured_hosts
from bench.capacity.queueing import capacity_qps
from bench.capacity.scaling import core_sharing, host_scale
from bench.load.slo_search import Trial, highest_passing_rate, passed
from bench.run import run_benchmark
from tests.conftest import compose

SLO_MS = 40.0


def _run(tmp_path, overrides: list[str], name: str):
    base = [
        "model=minilm",
        "backend=onnxruntime",
        "backend.threads=1",
        "core_sharing=null",  # measured: the model's own, as a user's run measures it
        "progress=false",
        "accuracy_samples=4",
        "scenario.warmup_s=1",
        "scenario.duration_s=15",
    ]
    folder = tmp_path / name
    run_benchmark(compose(base + overrides), folder)
    return results.load(folder)


def _searched_capacity(rows: pd.DataFrame) -> tuple[float | None, float | None]:
    """The highest rate the search's VALID `server` points passed at: the capacity measured
    (a point whose verdict failed, unstable or offered late on a busy host, measures nothing);
    and the lowest rate above it that failed, the SLO or the verdict (None if none did)."""
    server = rows[(rows["status"] == "measured") & rows["target_qps"].notna()]
    if server.empty:
        return None, None
    sc = json.loads(server.iloc[0]["config"])["scenario"]
    trials = [
        Trial(
            r["target_qps"],
            r[f"latency_{sc['slo_percentile']}_ms"],
            bool(r["valid"])
            and passed(r, sc["slo_ms"], sc["slo_percentile"], sc["max_late_fraction"]),
        )
        for r in server.to_dict("records")
    ]
    capacity = highest_passing_rate(trials)
    above = [t.rate for t in trials if not t.passed and t.rate > (capacity or 0.0)]
    return capacity, min(above, default=None)


def test_predicted_capacity_against_measured(benchmark, tmp_path):
    def measure():
        searches = {}
        for workers in (1, 2):
            search = _run(
                tmp_path,
                [
                    "scenario=slo_search",
                    f"scenario.slo_ms={SLO_MS}",
                    "scenario.max_points=5",
                    "scenario.tolerance=0.03",
                    f"strategy.workers={workers}",
                ],
                f"search{workers}",
            )
            searches[workers] = search
        host = measured_hosts(searches[1])[0]
        config = measured_configs(searches[1], host_cores=host.cores)[0]
        rows = []
        for workers, search in searches.items():
            sharing = core_sharing(
                host.facts, workers, host.cores, config.core_sharing
            ) / core_sharing(host.facts, config.workers, host.cores, config.core_sharing)
            # The planner's own rule: this host's factor (1 in MEASURED_BAND), times the core
            # sharing, at the host's slowest over the search (Scale.drifted).
            factor = (
                host_scale(host.facts, host.facts, config.precision, "onnxruntime")
                .times(sharing)
                .drifted(*config.drift)
            )
            band = [
                capacity_qps(
                    config.service_s / f, workers, SLO_MS, "p99", extra_s=config.overhead_s
                )
                for f in (factor.factor, factor.low, factor.high)
            ]
            rows.append((workers, sharing, *band, *_searched_capacity(search)))
        return config, rows

    config, rows = benchmark.pedantic(measure, rounds=1, iterations=1)
    service_ms = config.service_s.mean() * 1e3
    print(
        f"\nMiniLM / onnxruntime, 1 thread per replica, p99 SLO {SLO_MS:g} ms; "
        f"service time mean {service_ms:.2f} ms over {len(config.service_s)} requests "
        f"(from {config.service_points}); host drift {config.drift[0]:.2f}-{config.drift[1]:.2f}; "
        f"the model's core sharing {config.core_sharing:.3f}"
    )
    print(
        f"  {'replicas':>8s} {'sharing':>7s} {'predicted qps':>14s} {'band':>15s} "
        f"{'measured qps':>13s} {'failed at':>9s} {'error':>7s} {'in band':>7s}"
    )
    for workers, sharing, predicted, low, high, measured, failed in rows:
        error = (predicted - measured) / measured if measured else float("nan")
        inside = bool(measured) and low <= measured <= high
        print(
            f"  {workers:8d} {sharing:7.3f} {predicted:14.1f} {f'{low:.1f}-{high:.1f}':>15s} "
            f"{measured or float('nan'):13.1f} {failed or float('nan'):9.1f} {error:+7.1%} "
            f"{'yes' if inside else 'no':>7s}"
        )
        benchmark.extra_info[f"replicas_{workers}"] = {
            "core_sharing": sharing,
            "predicted_qps": predicted,
            "predicted_low_qps": low,
            "predicted_high_qps": high,
            "measured_qps": measured,
            "lowest_failed_qps_above": failed,
            "error": error,
        }
    assert all(row[-2] for row in rows), "a search found no valid rate meeting the SLO"
