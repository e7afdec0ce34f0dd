"""Tiers: every row says where it ran (host, limits), results from several hosts and tiers merge
into one frame without losing a host's facts, and the plan predicts each measured tier's
capacity from another's, beside what that tier measured."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from bench import results
from bench.capacity.measured import measured_hosts
from bench.capacity.plan import target_of, write_plan
from bench.capacity.store import Plan
from bench.capacity.tiers import cross_tier_table
from bench.results.tier import derived_tier
from bench.run import run_benchmark
from tests.conftest import LENIENT, compose
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


TINY = [
    "model=mlp",
    "scenario=rate_sweep",
    "scenario.rates=[50,200]",
    "scenario.warmup_s=0.2",
    "scenario.duration_s=1",
    "progress=false",
    "accuracy_samples=4",
    "report=false",
    *LENIENT,
]


@needs_quota
def test_tiers_merge_and_the_plan_predicts_each_from_the_other(tmp_path, cache_dir):
    direct = tmp_path / "sweep" / "direct"
    limited = tmp_path / "sweep" / "limited"
    run_benchmark(compose([*TINY, f"cache_dir={cache_dir}"]), direct)
    limits = ["strategy=container", "strategy.cpus=1", "tier=my-pod"]
    run_benchmark(compose([*TINY, *limits, f"cache_dir={cache_dir}"]), limited)
    frame = results.load(direct, limited, tmp_path / "sweep")  # read once each
    assert len(frame) == 4
    host = frame["tier"].iloc[0]
    assert set(frame["tier"]) == {host, "my-pod"}  # the user's label replaces the derived one
    assert frame.loc[frame["strategy"] == "direct", "tier"].eq(host).all()

    plan = Plan.read(write_plan(tmp_path / "sweep", compose(TINY)).parent)
    table = plan.cross_tier
    pairs = set(zip(table["from_tier"], table["to_tier"], strict=True))
    assert pairs == {(host, "my-pod"), ("my-pod", host)}
    assert table["configuration"].eq("mlp / torch / none").all()
    for row in table.to_dict("records"):
        assert row["predicted_low_qps"] <= row["predicted_qps"] <= row["predicted_high_qps"]
        assert row["measured_qps"] > 0 and row["tag"] == "measured"
        assert row["error_pct"] == pytest.approx(
            (row["predicted_qps"] - row["measured_qps"]) / row["measured_qps"] * 100
        )

    # The same rows as a shard measured on another host: merged, each host keeps its own facts.
    other = tmp_path / "sweep" / "other-host"
    shutil.copytree(direct, other)
    rows = pd.read_parquet(other / "results.parquet")
    calib = rows["calib_fp32_gflops_per_thread"].iloc[0]
    torch_calib = rows["calib_fp32_gflops_per_thread_torch"].iloc[0]
    rows = rows.assign(
        host_name="big-box",
        host_cpu_model="Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
        host_cores=64,
        calib_host_key="big-box-key",
        calib_fp32_gflops_per_thread=calib * 2,
        calib_fp32_gflops_per_thread_torch=torch_calib * 2,
        tier=None,  # as a row stored before rows carried a tier
    )
    rows.to_parquet(other / "results.parquet")
    merged = results.load(direct, other)
    assert set(merged["tier"]) == {host, "xeon-gold-6338-64c"}
    hosts = {h.name: h for h in measured_hosts(merged)}
    assert len(hosts) == 2 and hosts["big-box"].facts["calib_fp32_gflops_per_thread"] == calib * 2
    table = cross_tier_table(merged, target_of(compose(TINY))).set_index(["from_tier", "to_tier"])
    across = table.loc[(host, "xeon-gold-6338-64c")]
    assert across["tag"] == "calibrated" and across["host_factor"] == pytest.approx(2.0)
