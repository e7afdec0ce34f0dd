"""A whole run, in-process: every scenario preset on a tiny budget, re-runs, failed points."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.load import RULES
from bench.registry import options, typed
from bench.results import missing_columns
from bench.run import run_benchmark
from runners.processes import free_port_run
from tests.conftest import compose

TINY = [
    "model=mlp",
    # Longer than any tiny point lasts, even on a loaded machine: every point is "too short".
    "scenario.min_duration_s=100",
    "scenario.warmup_s=0.2",
    "scenario.duration_s=0.6",
    "progress=false",
    "accuracy_samples=4",
]


# Every scenario but the search, whose points depend on what it measures (tests/test_slo_search.py).
STATIC_SCENARIOS = [name for name in options()["scenario"] if name != "slo_search"]


@pytest.mark.parametrize("scenario", STATIC_SCENARIOS)
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_every_scenario_preset_runs_on_a_tiny_budget(scenario, backend, tmp_path, cache_dir):
    extra = {
        "concurrency": ["scenario.levels=[1,2]"],
        "rate_sweep": ["scenario.rates=[40,20]"],
        # Sparse schedules squeezed into the tiny window, so that it holds a few requests.
        "intermittent": ["scenario.gap_s=0.1"],
        "bursty": ["scenario.burst_size=3", "scenario.idle_s=0.1"],
        "trace": ["scenario.trough_qps=50", "scenario.peak_qps=100"],
    }.get(scenario, [])
    cfg = compose(
        [*TINY, f"scenario={scenario}", f"backend={backend}", f"cache_dir={cache_dir}", *extra]
    )
    rows = run_benchmark(cfg, tmp_path)
    assert missing_columns(rows.columns) == []
    assert (rows["status"] == "measured").all()
    assert len(rows) == len(typed("scenario", cfg.scenario).points())
    assert (rows["scenario"] == scenario).all() and (rows["backend"] == backend).all()
    assert (rows["achieved_qps"] > 0).all() and (rows["errors"] == 0).all()
    # The served model matches the fp32 reference.
    assert (rows["accuracy_cosine_min"] > 0.9999).all()
    # A tiny budget is too short to trust, and the verdict says so.
    assert not rows["valid"].any()
    assert rows["invalid_reasons"].str.contains("too short").all()
    # Each rule has its own column, and the rules as judged are stored with the row.
    assert not rows["check_duration"].any() and rows["check_errors"].all()
    assert (rows["invalid_codes"].map(json.loads).map(lambda codes: "duration" in codes)).all()
    judged = json.loads(rows["verdict_rules"].iloc[0])
    assert [rule["check"] for rule in judged] == list(RULES)
    assert all(f"check_{rule}" in rows.columns for rule in RULES)
    # Every row carries the calibration of the host that measured it, for the planner.
    assert rows["calib_host_key"].notna().all() and rows["calib_host_key"].nunique() == 1
    assert (rows["calib_fp32_gflops_per_thread"] > 0).all()
    # In-process, the harness's own CPU is the model's too: no client share is claimed.
    assert rows["client_cpu_ms_per_request"].isna().all()
    assert (tmp_path / "results.parquet").exists()
    for pid in rows["point_id"]:
        assert len(pd.read_parquet(tmp_path / "requests" / f"{pid}.parquet")) > 0


def test_a_rerun_in_the_same_folder_skips_measured_points(tmp_path, cache_dir):
    cfg = compose([*TINY, "scenario=concurrency", "scenario.levels=[1]", f"cache_dir={cache_dir}"])
    first = run_benchmark(cfg, tmp_path)
    cfg2 = compose(
        [*TINY, "scenario=concurrency", "scenario.levels=[1,2]", f"cache_dir={cache_dir}"]
    )
    second = run_benchmark(cfg2, tmp_path)
    assert len(second) == 2
    kept = second.set_index("point_id").loc[first["point_id"][0]]
    assert kept["run_id"] == first["run_id"][0]  # not measured again
    assert second["run_id"].nunique() == 2


def _unreachable() -> list[str]:
    """A runner that cannot start: an endpoint where nothing listens."""
    port = free_port_run("127.0.0.1", 1)
    return [
        "strategy=endpoint",
        f"strategy.url='http://127.0.0.1:{port}'",
        "strategy.start_timeout_s=0.3",
    ]


def test_a_runner_that_cannot_start_records_one_failed_row_per_point(tmp_path, cache_dir):
    cfg = compose([*TINY, *_unreachable(), f"cache_dir={cache_dir}"])
    rows = run_benchmark(cfg, tmp_path)
    assert (rows["status"] == "failed").all() and len(rows) == 3
    assert rows["label"].is_unique and rows["point_id"].is_unique
    assert rows["error"].str.contains("not ready after 0.3 s").all()
    assert not rows["valid"].any()
    assert rows["calib_host_key"].notna().all()


def test_a_failed_point_is_measured_again_on_a_rerun(tmp_path, cache_dir):
    bad = compose(
        [
            *TINY,
            "scenario=single_stream",
            *_unreachable(),
            f"cache_dir={cache_dir}",
        ]
    )
    assert (run_benchmark(bad, tmp_path)["status"] == "failed").all()
    good = compose([*TINY, "scenario=single_stream", f"cache_dir={cache_dir}"])
    rows = run_benchmark(good, tmp_path)
    assert sorted(rows["status"]) == ["failed", "measured"]  # both configurations kept
    again = run_benchmark(good, tmp_path)
    assert len(again) == 2  # the measured point is not measured twice


def test_slo_search_brackets_the_highest_rate_meeting_the_slo(tmp_path, cache_dir):
    cfg = compose(
        [
            *TINY,
            "scenario=slo_search",
            "scenario.slo_ms=5",
            "scenario.max_points=4",
            f"cache_dir={cache_dir}",
        ]
    )
    rows = run_benchmark(cfg, tmp_path)
    probe, server = rows.iloc[0], rows.iloc[1:]
    assert probe["concurrency"] == 4 and probe["scenario"] == "slo_search"
    assert 1 <= len(server) <= 4
    # The first rate is half the probe's saturation throughput; each later rate differs.
    assert server["target_qps"].iloc[0] == pytest.approx(probe["achieved_qps"] / 2, rel=1e-3)
    assert server["target_qps"].is_unique


def test_a_rate_added_to_a_finished_sweep_measures_only_the_new_rate(tmp_path, cache_dir):
    sweep = [*TINY, "scenario=rate_sweep", f"cache_dir={cache_dir}"]
    first = run_benchmark(compose([*sweep, "scenario.rates=[20]"]), tmp_path)
    second = run_benchmark(compose([*sweep, "scenario.rates=[20,30]"]), tmp_path)
    assert list(second["target_qps"]) == [20.0, 30.0]
    assert second["run_id"].iloc[0] == first["run_id"].iloc[0] != second["run_id"].iloc[1]
    # A rate sweep's point is the server scenario's point at that rate.
    assert list(second["label"]) == ["server 20 qps", "server 30 qps"]
