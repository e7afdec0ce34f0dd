"""The planner, from stored results to servers, manifests and tables; re-planning measures
nothing."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from bench.capacity.catalog import Price, load_catalog
from bench.capacity.manifests import Deployment, manifests
from bench.capacity.measured import MeasuredConfig
from bench.capacity.plan import write_plan
from bench.capacity.planner import Target, recommend, sizing_table
from bench.capacity.queueing import predicted_percentile_ms
from bench.run import run_benchmark
from tests.conftest import checkout_env, compose

HOST = {  # a calibrated host, as host_calibration and the fingerprint describe one
    "host_cpu_model": "Test CPU",
    "host_isa": "avx2,fma,avx512f,avx512_vnni,avx512_bf16",
    "host_cores": 8,
    "calib_fp32_gflops_per_thread": 100.0,
    "calib_bf16_gflops_per_thread": 200.0,
    "calib_int8_gops_per_thread": 400.0,
    "calib_mem_bandwidth_gbs": 20.0,
    "calib_spread": 0.05,
}


def measured(service_ms: float = 10.0, accuracy_ok: bool = True) -> MeasuredConfig:
    rng = np.random.default_rng(0)
    config = {
        "model": {"name": "mlp"},
        "backend": {"name": "onnxruntime", "threads": 2},
        "optimization": {"name": "none"},
        "strategy": {"name": "direct"},
    }
    return MeasuredConfig(
        label="mlp / onnxruntime / none / direct",
        config=config,
        service_s=rng.gamma(20.0, service_ms / 20.0 / 1e3, 500),
        service_points="concurrency 1",
        workers=1,
        threads_per_worker=2,
        rss_mb_per_worker=500.0,
        precision="fp32",
        accuracy_ok=accuracy_ok,
        host_capacity_qps=None,
        host_name="test",
        uses_gpu=False,
    )


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_servers_needed_cover_the_peak_with_headroom_within_the_slo(catalog):
    target = Target(peak_qps=500.0, percentile="p99", slo_ms=50.0, headroom=0.3)
    sizing = sizing_table([measured()], catalog, HOST, target)
    assert len(sizing) == len(catalog.servers)
    for _, row in sizing[sizing["servers"].notna()].iterrows():
        assert row["servers"] == math.ceil(target.provisioned_qps / row["capacity_qps"])
        assert row["capacity_qps_low"] <= row["capacity_qps"] <= row["capacity_qps_high"]
        assert row["predicted_p99_ms"] <= target.slo_ms
        assert row["replicas"] == row["servers"] * row["workers_per_server"]
        assert row["tag"] in ("measured", "calibrated", "spec-only")


def test_more_load_needs_more_servers_and_gpu_servers_are_not_guessed(catalog):
    small = sizing_table([measured()], catalog, HOST, Target(100.0, "p99", 50.0, 0.3))
    large = sizing_table([measured()], catalog, HOST, Target(2000.0, "p99", 50.0, 0.3))
    assert (large["servers"] >= small["servers"]).all()
    assert large["servers"].sum() > small["servers"].sum()
    workstation = small.set_index("server_id").loc["intel-core-i5-13500-workstation"]
    assert "not measured" in workstation["gpu"]  # sized on its CPU only, and saying so


def test_an_impossible_slo_and_a_failed_accuracy_floor_are_not_recommended(catalog):
    target = Target(100.0, "p99", 5.0, 0.3)  # below the 10 ms service time itself
    sizing = sizing_table([measured(10.0)], catalog, HOST, target)
    assert sizing["servers"].isna().all()
    assert sizing["unsized_reason"].str.contains("cannot meet the SLO").all()
    assert recommend(sizing) is None
    assert sizing_table([measured(accuracy_ok=False)], catalog, HOST, target).empty


def test_prices_decide_when_known(catalog):
    target = Target(300.0, "p99", 50.0, 0.3)
    priced = load_catalog(
        prices={
            "amd-epyc-9454p": {"eur_per_month": 10_000, "as_of": "2026-11", "source": "test"},
            "amd-ryzen-5-3600": {"eur_per_month": 40, "as_of": "2026-11", "source": "test"},
        }
    )
    best = recommend(sizing_table([measured()], priced, HOST, target))
    assert best["server_id"] == "amd-ryzen-5-3600"
    assert best["monthly_cost_eur"] == best["servers"] * 40
    assert isinstance(priced.server("amd-ryzen-5-3600").price, Price)


def test_manifests_give_whole_cores_and_cover_measured_memory():
    d = Deployment(
        "m",
        "img",
        replicas=6,
        min_replicas=4,
        max_replicas=6,
        cpu_per_replica=2,
        rss_mb_per_replica=500.0,
        target_cpu_pct=77,
    )
    files = manifests(d)
    container = files["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"]
    assert container["resources"]["requests"]["memory"] == "625Mi"
    assert files["service.yaml"]["spec"]["type"] == "LoadBalancer"
    assert files["ingress.yaml"]["spec"]["ingressClassName"] == "nginx"
    hpa = files["hpa.yaml"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (4, 6)


def test_a_run_plans_and_replans_without_measuring(tmp_path, cache_dir):
    overrides = [
        "model=mlp",
        "scenario=single_stream",
        "scenario.warmup_s=0.2",
        "scenario.duration_s=0.8",
        "progress=false",
        "accuracy_samples=4",
        f"cache_dir={cache_dir}",
        "plan.calibration_s=1",
        "plan.peak_qps=200",
    ]
    run_benchmark(compose(overrides), tmp_path)
    plan = write_plan(tmp_path, compose(overrides))
    sizing = pd.read_csv(plan / "sizing.csv")
    assert len(sizing) == 18 and sizing["servers"].notna().any()
    sentence = (plan / "recommendation.txt").read_text()
    assert sentence.startswith("To serve 200 requests/s at p99 under 100 ms")
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in (plan / "kubernetes").iterdir()}
    assert kinds == {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler"}
    assert "runners.worker" in (plan / "image" / "Dockerfile").read_text()  # the image to build
    tables = (plan / "tables.md").read_text()
    for title in ("Deployment environments", "Performance metrics", "Kubernetes configuration"):
        assert title in tables
    measured_before = pd.read_parquet(tmp_path / "results.parquet")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.capacity",
            str(tmp_path),
            "plan.peak_qps=5000",
            "plan.calibration_s=1",
            f"cache_dir={cache_dir}",
        ],
        cwd=tmp_path,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "To serve 5000 requests/s" in proc.stdout
    assert "To serve 5000 requests/s" in (plan / "recommendation.txt").read_text()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "results.parquet"), measured_before)
    html = (tmp_path / "report.html").read_text()
    assert '<h2 id="plan">Sizing</h2>' in html and "To serve 5000 requests/s" in html
    assert "Kubernetes configuration" in html


def test_replanning_a_missing_folder_names_it(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bench.capacity", str(tmp_path / "nowhere")],
        cwd=tmp_path,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "nowhere" in proc.stderr


def test_the_queueing_check_agrees_with_the_sizing(catalog):
    m = measured()
    target = Target(800.0, "p99", 40.0, 0.3)
    row = sizing_table([m], catalog, HOST, target).dropna(subset=["servers"]).iloc[0]
    per_server = target.peak_qps / row["servers"]
    predicted = predicted_percentile_ms(
        m.service_s / row["scale_factor"], per_server, int(row["workers_per_server"]), "p99"
    )
    assert predicted == pytest.approx(row["predicted_p99_ms"])


def test_serverless_break_even_against_the_priced_recommendation():
    from bench.capacity.plan import serverless_break_even
    from bench.capacity.planner import SECONDS_PER_MONTH

    frame = pd.DataFrame(
        {
            "strategy": ["serverless", "serverless", "direct"],
            "status": ["measured", "measured", "measured"],
            "cost_per_million_usd": [2.0, 4.0, np.nan],
        }
    )
    best = pd.Series({"servers": 2, "server": "Ryzen 5 3600 Server", "monthly_cost_eur": 100.0})
    # 3 USD per million at 0.9 EUR per USD: 100 EUR a month buys 100 / 2.7e-6 requests.
    sentence = serverless_break_even(frame, best, eur_per_usd=0.9)
    expected = 100.0 / (2.7e-6 * SECONDS_PER_MONTH)
    assert f"below {expected:,.2f} requests/s" in sentence
    assert "set plan.eur_per_usd" in serverless_break_even(frame, best, eur_per_usd=None)
    assert "set catalog.prices" in serverless_break_even(frame, None, eur_per_usd=0.9)
    assert serverless_break_even(frame[frame["strategy"] == "direct"], best, 0.9) is None
