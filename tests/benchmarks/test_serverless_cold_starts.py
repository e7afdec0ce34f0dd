"""Serverless cold starts on the real MiniLM: an ONNX Runtime worker against a torch worker,
under an intermittent schedule whose gaps straddle the keep-alive, so that some requests find
a warm instance and the others pay a cold start.

Run: pytest tests/benchmarks/test_serverless_cold_starts.py --benchmark-only -s

Per worker: the cold starts and the median of each part (process start, imports, model load,
first inference, serving), the fraction of requests that paid one, p50 and p99 latency counted
from the intended send time (cold starts included), whether the worker imported torch, its peak
RSS, the GB-seconds billed (start-up plus requests, at the measured peak RSS) and the cost per
million requests at the configured AWS Lambda prices (`catalog.serverless_pricing`, dated in
bench/config.py), as the planner prices the usage stored. Each backend's ONNX export (or none)
is made at start(), before any instance.
"""

from __future__ import annotations

import pandas as pd

from bench.capacity.serverless import serverless_costs
from bench.run import run_benchmark
from tests.conftest import compose

SCHEDULE = [
    "scenario=intermittent",
    "scenario.gap_s=4",
    "scenario.jitter=0.5",  # gaps of 2 to 6 s around a 2 s keep-alive
    "scenario.duration_s=60",
    "strategy.keep_alive_s=2",
    "strategy.max_instances=2",
]
COLUMNS = {
    "cold_starts": "cold",
    "cold_start_fraction": "cold frac",
    "cold_start_s": "cold s",
    "cold_start_process_s": "process",
    "cold_start_imports_s": "imports",
    "cold_start_model_load_s": "model load",
    "cold_start_first_inference_s": "1st infer",
    "cold_start_serving_s": "serving",
    "latency_p50_ms": "p50 ms",
    "latency_p99_ms": "p99 ms",
    "instances_importing_torch": "torch",
    "instance_rss_peak_mb": "RSS MB",
    "gb_seconds_busy": "GB-s",
    "cost_per_million": "USD/1M",
}


def test_cold_starts_of_onnxruntime_and_torch_workers(benchmark, tmp_path, cache_dir):
    rows = {}

    def measure():
        for backend in ("onnxruntime", "torch"):
            cfg = compose(
                [
                    "model=minilm",
                    f"backend={backend}",
                    "strategy=serverless",
                    *SCHEDULE,
                    "accuracy_samples=0",
                    "progress=false",
                    f"cache_dir={cache_dir}",
                ]
            )
            row = run_benchmark(cfg, tmp_path / backend).iloc[0]
            (cost,) = serverless_costs(pd.DataFrame([row]), dict(cfg.catalog.serverless_pricing))[
                "cost_per_million"
            ]
            rows[backend] = pd.concat([row, pd.Series({"cost_per_million": cost})])

    benchmark.pedantic(measure, rounds=1, iterations=1)
    table = pd.DataFrame({name: row[list(COLUMNS)] for name, row in rows.items()}).T
    table = table.rename(columns=COLUMNS)
    print()
    print(table.to_string(float_format=lambda v: f"{v:.3g}"))
    for backend, row in rows.items():
        assert row["status"] == "measured" and row["errors"] == 0, row["error"]
        assert row["cold_starts"] >= 1
        benchmark.extra_info.update(
            {f"{backend} {label}": float(row[column]) for column, label in COLUMNS.items()}
        )
    assert rows["onnxruntime"]["instances_importing_torch"] == 0
    assert rows["torch"]["instances_importing_torch"] >= 1
