"""Tiers: every row says where it ran (host, limits), results from several hosts and tiers merge
into one frame without losing a host's facts, and the plan predicts each measured tier's
capacity from another's, beside what that tier measured. One real `+experiment=tiers` sweep on
a tiny budget serves the tests that need measurements."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace

import pandas as pd
import pytest

from bench import results
from bench.capacity.measured import measured_hosts
from bench.capacity.plan import target_of
from bench.capacity.planner import Target
from bench.capacity.store import Plan
from bench.capacity.tiers import (
    COLUMNS,
    amdahl_share,
    cross_tier_table,
    measured_ceiling,
    parallel_share,
    predict,
    speed,
    tier_entries,
)
from bench.results.tier import derived_tier, tier_of
from tests.conftest import LENIENT, checkout_env, compose
from tests.test_container import needs_quota

EPYC = {"host_cpu_model": "AMD EPYC 7B13", "host_cores": 2}


@pytest.mark.parametrize(
    "row, tier",
    [
        ({**EPYC, "strategy": "direct"}, "epyc-7b13-2c"),
        ({**EPYC, "strategy": "container", "strategy.cpus": 1.0}, "epyc-7b13-2c/cpus=1"),
        ({**EPYC, "strategy": "container", "strategy.cpus": 0.5}, "epyc-7b13-2c/cpus=0.5"),
        ({**EPYC, "strategy": "container", "strategy.cpus": float("nan")}, "epyc-7b13-2c"),
        (
            {**EPYC, "strategy": "edge", "strategy.device": '{"name": "small", "cores": 2}'},
            "epyc-7b13-2c/edge=small",
        ),
        (
            {
                "host_cpu_model": "Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz",
                "host_cores": 224,
                "backend.device": "cuda",
                "host_gpu": "NVIDIA H100 80GB HBM3, NVIDIA H100 80GB HBM3",
            },
            "xeon-platinum-8480-224c/gpu=h100-80gb-hbm3",
        ),
    ],
)
def test_a_tier_is_the_host_narrowed_by_its_limits(row, tier):
    assert derived_tier(row) == tier
    assert tier_of(row, "") == tier and tier_of(row, " staging-pod ") == "staging-pod"


def test_a_worker_below_one_core_runs_at_its_share_and_threads_help_by_amdahl():
    assert speed(0.5, 0.9) == pytest.approx(0.5)
    assert speed(2, 0.0) == 1.0 and speed(2, 1.0) == pytest.approx(2.0)
    assert amdahl_share(2.0, 2) == pytest.approx(1.0) and amdahl_share(1.0, 2) == 0.0


def test_the_parallel_share_comes_from_the_probe_s_back_to_back_calls_where_it_took_them():
    probed = "probed (median of 12 calls, each after 20 ms idle) 1: 6.54 ms, 2: 5.40 ms"
    busy = "back to back 1: 5.20 ms, 2: 3.30 ms"
    new = pd.DataFrame({"predictor_threads_choice": [f"{probed}; {busy}; chose 2, the fewest"]})
    old = pd.DataFrame({"predictor_threads_choice": [f"{probed}; chose 2, the fewest"]})
    assert parallel_share(new, {})[0] == pytest.approx(amdahl_share(5.20 / 3.30, 2))
    assert parallel_share(old, {})[0] == pytest.approx(amdahl_share(6.54 / 5.40, 2))


def test_the_capacity_lies_below_the_lowest_rate_above_it_that_missed_the_slo():
    # A search's points: offered rate, p99 (ms); 100 ms is the SLO; valid or not, a miss bounds.
    tried = pd.DataFrame(
        {
            "target_qps": [None, 100.0, 150.0, 225.0, 180.0, 60.0],
            "latency_p99_ms": [30.0, 40.0, 700.0, 900.0, 120.0, 300.0],
            "valid": [True, True, False, False, True, True],
        }
    )
    target = Target(peak_qps=1.0, percentile="p99", slo_ms=100.0, headroom=0.0)
    assert measured_ceiling(tried, target, 100.0) == 150.0
    assert measured_ceiling(tried, target, 200.0) == 225.0
    assert pd.isna(measured_ceiling(tried, target, 300.0))
    # No rate met the SLO: every rate that missed it is above the capacity.
    assert measured_ceiling(tried, target, float("nan")) == 60.0


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, cache_dir):
    """`bench +experiment=tiers` as a user runs it, on the mlp and a tiny budget."""
    folder = tmp_path_factory.mktemp("tiers") / "sweep"
    tiny = ["model=mlp", "backend=torch", "scenario.duration_s=0.6", "scenario.warmup_s=0.2"]
    # An SLO a loaded host cannot miss: a tier whose one point missed it would have no valid
    # point to predict from or to.
    tiny += ["scenario.max_points=1", "scenario.slo_ms=5000"]
    tiny += ["accuracy_samples=4", "progress=false", "report=false", *LENIENT]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "+experiment=tiers", *tiny]
        + [f"cache_dir={cache_dir}", f"hydra.sweep.dir={folder}"],
        cwd=folder.parent,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


@needs_quota
def test_the_tiers_sweep_measures_three_tiers_and_predicts_each_from_the_others(sweep):
    frame = results.load(sweep, sweep / "0")  # a folder inside another is read once
    assert len(frame) == len(results.load(sweep))
    host = frame["host_name"].iloc[0]
    tiers = set(frame["tier"])
    base = min(tiers, key=len)
    assert tiers == {base, f"{base}/cpus=1", f"{base}/edge=small"}

    table = Plan.read(sweep).cross_tier
    assert list(table.columns[: len(COLUMNS)]) == list(COLUMNS)
    pairs = set(zip(table["from_tier"], table["to_tier"], strict=True))
    assert pairs == {(a, b) for a in tiers for b in tiers if a != b}
    assert table["configuration"].eq("mlp / torch / none").all()
    assert table["from_host"].eq(host).all() and table["tag"].eq("measured").all()
    for row in table.to_dict("records"):
        assert row["predicted_low_qps"] <= row["predicted_qps"] <= row["predicted_high_qps"]
        if row["measured_qps"] > 0:
            error = (row["predicted_qps"] - row["measured_qps"]) / row["measured_qps"] * 100
            assert row["error_pct"] == pytest.approx(error)
            ceiling = row["measured_ceiling_qps"]
            assert pd.isna(ceiling) or ceiling > row["measured_qps"]
    limited = table[table["to_tier"] == f"{base}/cpus=1"]
    assert (limited["to_cpus_per_worker"] <= 1).all()


@needs_quota
def test_a_tier_is_predicted_at_the_slowest_its_source_host_ran(sweep):
    # The same source, as if its host had served its points at 0.8 to 1.2 of the speed of the
    # points its service times came from: the prediction is made at 0.8, the band reaches 1.2.
    entries = tier_entries(results.load(sweep))
    source, to = entries[0], entries[1]
    target = Target(peak_qps=100.0, percentile="p99", slo_ms=5000.0, headroom=0.0)
    steady = predict(source, to, target)
    drifted = predict(
        replace(source, measured=replace(source.measured, drift=(0.8, 1.2))), to, target
    )
    base = predict(replace(source, measured=replace(source.measured, drift=(1.0, 1.0))), to, target)
    assert drifted["scale_factor"] == pytest.approx(base["scale_factor"] * 0.8)
    assert drifted["predicted_qps"] < base["predicted_qps"]
    assert drifted["predicted_low_qps"] < base["predicted_low_qps"]
    assert drifted["predicted_high_qps"] > base["predicted_high_qps"]
    assert steady["predicted_qps"] <= base["predicted_qps"]  # its own drift is at most 1


@needs_quota
def test_a_shard_from_another_host_merges_keeping_its_own_facts(sweep, tmp_path):
    # The no-limit run as a shard measured on another host, stored before rows carried a tier.
    ours = sweep / "0"
    other = tmp_path / "other-host"
    shutil.copytree(ours, other)
    rows = pd.read_parquet(other / "results.parquet")
    calib = rows["calib_fp32_gflops_per_thread_torch"].iloc[0]
    fp32 = [c for c in rows.columns if c.startswith("calib_fp32_gflops_per_thread")]
    rows = rows.assign(
        host_name="big-box",
        host_cpu_model="Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
        host_cores=64,
        calib_host_key="big-box-key",
        tier=None,
        **{column: rows[column] * 2 for column in fp32},  # twice as fast a thread
    )
    rows.to_parquet(other / "results.parquet")
    merged = results.load(ours, other)
    ours_tier = merged["tier"].iloc[0]
    assert set(merged["tier"]) == {ours_tier, "xeon-gold-6338-64c"}
    hosts = {h.name: h for h in measured_hosts(merged)}
    assert len(hosts) == 2
    assert hosts["big-box"].facts["calib_fp32_gflops_per_thread_torch"] == calib * 2
    table = cross_tier_table(merged, target_of(compose(["model=mlp"])))
    across = table.set_index(["from_tier", "to_tier"]).loc[(ours_tier, "xeon-gold-6338-64c")]
    assert across["tag"] == "calibrated" and across["host_factor"] == pytest.approx(2.0)
