"""The planner, from stored results to servers, manifests and tables; re-planning measures
nothing, and each measuring host is scaled from the calibration stored in its own rows."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bench.capacity.catalog import Price, load_catalog
from bench.capacity.manifests import Deployment, manifests, pinned
from bench.capacity.measured import UNCALIBRATED, MeasuredConfig, host_drift
from bench.capacity.plan import write_plan
from bench.capacity.planner import Target, recommend, sizing_table
from bench.capacity.queueing import predicted_percentile_ms
from bench.capacity.store import Plan
from bench.config import ConfigError, validate
from bench.results import ResultsStore
from bench.run import run_benchmark
from reports import build_report
from tests.conftest import LENIENT, checkout_env, compose

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


def test_workers_busy_beside_each_other_carry_less_each_than_the_one_measured_alone(catalog):
    # Measured with one worker on an 8-core host; a server runs several at once, and the host's
    # calibration says a core ran at 80% of its solo rate with every core busy.
    target = Target(peak_qps=500.0, percentile="p99", slo_ms=50.0, headroom=0.3)
    alone = sizing_table([measured()], catalog, HOST, target).set_index("server_id")
    shared = sizing_table(
        [measured()], catalog, {**HOST, "calib_core_sharing": 0.8}, target
    ).set_index("server_id")
    several = alone.index[(alone["workers_per_server"] > 1) & alone["capacity_qps"].notna()]
    assert len(several) > 3
    for server in several:
        row, before = shared.loc[server], alone.loc[server]
        assert before["core_sharing"] == 1.0 and row["core_sharing"] < 1.0
        assert row["scale_factor"] == pytest.approx(before["scale_factor"] * row["core_sharing"])
        assert row["capacity_qps"] < before["capacity_qps"]
        assert row["capacity_qps_low"] <= before["capacity_qps_low"]


def test_a_host_that_slowed_while_it_measured_is_sized_at_its_slowest(catalog):
    # The host served this configuration's points at 0.8 to 1.1 of the speed of the points the
    # service times came from: the plan holds at 0.8, and the band reaches 1.1.
    target = Target(peak_qps=500.0, percentile="p99", slo_ms=50.0, headroom=0.3)
    steady = sizing_table([measured()], catalog, HOST, target).set_index("server_id")
    drifting = sizing_table(
        [replace(measured(), drift=(0.8, 1.1))], catalog, HOST, target
    ).set_index("server_id")
    sized = steady.index[steady["capacity_qps"].notna()]
    assert len(sized) > 3
    for server in sized:
        row, before = drifting.loc[server], steady.loc[server]
        assert row["scale_factor"] == pytest.approx(before["scale_factor"] * 0.8)
        assert row["scale_low"] == pytest.approx(before["scale_low"] * 0.8)
        assert row["scale_high"] == pytest.approx(before["scale_high"] * 1.1)
        assert row["capacity_qps"] < before["capacity_qps"]
        assert row["servers"] >= before["servers"]
        assert (row["host_drift_slowest"], row["host_drift_fastest"]) == (0.8, 1.1)
    assert (drifting.loc[sized, "servers"] > steady.loc[sized, "servers"]).any()


def test_host_drift_is_the_slowest_and_fastest_point_against_the_service_times():
    points = pd.DataFrame(
        {
            "status": ["measured", "measured", "measured", "failed"],
            "target_qps": [50.0, 100.0, 150.0, 200.0],
            # The failed point timed nothing the planner may trust; the invalid one did.
            "server_compute_p50_ms": [5.0, 4.0, 6.25, 20.0],
            "valid": [True, True, False, False],
        }
    )
    assert host_drift(points, np.full(100, 0.005)) == pytest.approx((0.8, 1.25))
    # Every point at the service times' own speed: no drift either way.
    assert host_drift(points.iloc[:1], np.full(100, 0.005)) == (1.0, 1.0)


def test_the_models_own_core_sharing_is_used_over_the_hosts_calibration(catalog):
    # The run measured the model's own figure (0.6); the host's GEMM calibration said 0.8.
    target = Target(peak_qps=500.0, percentile="p99", slo_ms=50.0, headroom=0.3)
    host = {**HOST, "calib_core_sharing": 0.8}
    by_host = sizing_table([measured()], catalog, host, target).set_index("server_id")
    by_model = sizing_table(
        [replace(measured(), core_sharing=0.6)], catalog, host, target
    ).set_index("server_id")
    several = by_host.index[(by_host["workers_per_server"] > 1) & by_host["capacity_qps"].notna()]
    assert len(several) > 3
    assert set(by_host["core_sharing_from"]) == {"host calibration"}
    for server in several:
        row, before = by_model.loc[server], by_host.loc[server]
        assert row["core_sharing_from"] == "model"
        assert row["core_sharing"] < before["core_sharing"]
        assert row["capacity_qps"] < before["capacity_qps"]


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


def test_a_generating_server_scales_on_requests_in_flight_and_streams_unbuffered():
    d = Deployment(
        "causal-lm-torch",
        "img",
        replicas=4,
        min_replicas=3,
        max_replicas=4,
        cpu_per_replica=1,
        rss_mb_per_replica=500.0,
        target_cpu_pct=None,
        target_in_flight=1.54,
        generates=True,
    )
    files = manifests(d)
    [metric] = files["hpa.yaml"]["spec"]["metrics"]
    assert metric == {
        "type": "Pods",
        "pods": {
            "metric": {"name": "bench_requests_in_flight"},
            "target": {"type": "AverageValue", "averageValue": "1540m"},
        },
    }
    ingress = files["ingress.yaml"]
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    assert [p["path"] for p in paths] == ["/v1", "/v2"]
    assert ingress["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/proxy-buffering": "off"
    }
    # Without a target of either kind, the HPA has nothing to scale on: said, not guessed.
    with pytest.raises(ValueError, match="causal-lm-torch: neither a CPU nor an in-flight"):
        manifests(Deployment("causal-lm-torch", "img", 1, 1, 1, 1, 500.0, None))


@pytest.mark.parametrize(
    "image, pinned_as",
    [
        (
            "REGISTRY/bench-serving",
            "REGISTRY/bench-serving@sha256:<digest of the plan/image build>",
        ),
        (
            "reg.example:5000/team/m:1.2",
            "reg.example:5000/team/m@sha256:<digest of the plan/image build>",
        ),
        ("reg/m@sha256:" + "a" * 64, "reg/m@sha256:" + "a" * 64),
    ],
)
def test_the_image_is_pinned_by_digest(image, pinned_as):
    assert pinned(image) == pinned_as


def test_a_run_plans_and_replans_without_measuring(tmp_path, cache_dir):
    overrides = [
        "model=mlp",
        "scenario=single_stream",
        "scenario.warmup_s=0.2",
        "scenario.duration_s=0.8",
        "progress=false",
        "accuracy_samples=4",
        f"cache_dir={cache_dir}",
        "calibration_s=1",
        "plan.peak_qps=200",
        *LENIENT,
    ]
    run_benchmark(compose(overrides), tmp_path)
    plan = write_plan(tmp_path, compose(overrides))
    sizing = pd.read_csv(plan / "sizing.csv")
    assert len(sizing) == 18 and sizing["servers"].notna().any()
    sentence = (plan / "recommendation.txt").read_text()
    assert sentence.startswith("To serve 200 requests/s at p99 under 100 ms")
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in (plan / "kubernetes").glob("*.yaml")}
    assert kinds == {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler"}
    # The image pinned by a digest placeholder, the model sized named by its artifact's hash.
    served = pd.read_parquet(tmp_path / "results.parquet")["model_sha256"].iloc[0]
    deployment = yaml.safe_load((plan / "kubernetes" / "deployment.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "REGISTRY/bench-serving@sha256:<digest of the plan/image build>"
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {
        "bench/model-sha256": served,
        "bench/model-artifact": "mlp weights (6 tensors)",
    }
    assert "docker push REGISTRY/bench-serving" in (plan / "kubernetes" / "README.md").read_text()
    assert f"Sized for mlp weights (6 tensors) (model_sha256 {served})." in sentence
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
            "calibration_s=1",
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


def test_the_plans_pod_is_measured_under_its_limits_and_checked_against_the_plan(
    tmp_path, cache_dir
):
    quick = [
        "progress=false",
        "accuracy_samples=4",
        f"cache_dir={cache_dir}",
        "calibration_s=1",
        "scenario.warmup_s=0.2",
        *LENIENT,
    ]
    measured_run = tmp_path / "run"
    first = compose(["model=mlp", "scenario=single_stream", "scenario.duration_s=0.8", *quick])
    run_benchmark(first, measured_run)
    plan = Plan.read(write_plan(measured_run, first).parent)
    check = plan.pod_check
    threads = check["threads"]
    assert check["cpus"] == threads >= 1 and check["memory_mb"] >= 16
    assert {"strategy=container", f"strategy.cpus={threads}", f"backend.threads={threads}"} <= set(
        check["overrides"]
    )
    assert 0 < check["predicted_low_qps"] <= check["predicted_qps"] <= check["predicted_high_qps"]
    command = f"plan.check_of={measured_run.resolve()}"
    assert command in plan.pod_check_sentence and "bench model=mlp" in plan.pod_check_sentence

    # The command's run, kept short: the pod under its CPU quota, searched for its capacity.
    overrides = [*check["overrides"], command, "scenario.duration_s=2", "scenario.max_points=2"]
    checking_run = tmp_path / "check"
    cfg = compose([*overrides, *quick])
    run_benchmark(cfg, checking_run)
    rows = pd.read_parquet(checking_run / "results.parquet")
    assert set(rows["strategy"]) == {"container"} and (rows["cpu_limit"] == threads).all()
    checked = Plan.read(write_plan(checking_run, cfg).parent).checked
    [row] = checked.to_dict("records")
    assert row["predicted_qps"] == pytest.approx(check["predicted_qps"])
    assert row["plan"] == str(measured_run.resolve())
    if row["measured_qps"] > 0:
        assert row["error_pct"] == pytest.approx(
            (row["predicted_qps"] - row["measured_qps"]) / row["measured_qps"] * 100
        )
        assert row["in_band"] == (
            row["predicted_low_qps"] <= row["measured_qps"] <= row["predicted_high_qps"]
        )
    else:
        assert math.isnan(row["measured_qps"]) and not row["in_band"]
    html = build_report(checking_run).read_text()
    assert "The plan, checked" in html and f"predicted {row['predicted_qps']:.1f}" in html
    with pytest.raises(ConfigError, match=r"plan\.check_of"):
        validate(compose([f"plan.check_of={tmp_path / 'nowhere'}"]))


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
    from bench.capacity.serverless import serverless_costs

    frame = pd.DataFrame(
        {
            "run_id": ["r"] * 3,
            "point_id": ["a", "b", "c"],
            "strategy": ["serverless", "serverless", "direct"],
            "status": ["measured", "measured", "measured"],
            "invocations": [1000, 1000, np.nan],
            "gb_seconds_busy": [2000.0, 4000.0, np.nan],
        }
    )
    # 1e-6 per GB-second and nothing per request: 2 and 4 USD per million requests.
    pricing = {"currency": "USD", "per_gb_second": 1e-6, "per_million_requests": 0.0}
    costs = serverless_costs(frame, {**pricing, "billed_time": "busy", "as_of": "2026-11-25"})
    assert list(costs["cost_per_million"]) == pytest.approx([2.0, 4.0])
    best = pd.Series({"servers": 2, "server": "Ryzen 5 3600 Server", "monthly_cost_eur": 100.0})
    # 3 USD per million at 0.9 EUR per USD: 100 EUR a month buys 100 / 2.7e-6 requests.
    sentence = serverless_break_even(costs, best, eur_per_usd=0.9)
    expected = 100.0 / (2.7e-6 * SECONDS_PER_MONTH)
    assert f"below {expected:,.2f} requests/s" in sentence
    assert "prices as of 2026-11-25" in sentence
    assert "set plan.eur_per_usd" in serverless_break_even(costs, best, eur_per_usd=None)
    assert "set catalog.prices" in serverless_break_even(costs, None, eur_per_usd=0.9)
    no_serverless = serverless_costs(frame[frame["strategy"] == "direct"], pricing)
    assert serverless_break_even(no_serverless, best, 0.9) is None


# --- stored results from several hosts ----------------------------------------------------------

CALIBRATION = {
    "calib_bf16_gflops_per_thread": 200.0,
    "calib_int8_gops_per_thread": 400.0,
    "calib_mem_bandwidth_gbs": 20.0,
    "calib_fp32_gflops_all_threads": 600.0,
    "calib_spread": 0.05,
    "calib_method": "test",
    "calib_seconds": 1.0,
}


def _stored_row(host: str, point: int, calibration: dict | None) -> dict:
    """A measured point as a run stores it, on `host`, with its calibration (None: a row
    stored before runs stored one)."""
    config = {
        "model": {"name": "mlp"},
        "backend": {"name": "onnxruntime", "threads": 2},
        "optimization": {"name": "none"},
        "strategy": {"name": "direct"},
        "scenario": {"name": "concurrency"},
    }
    row = {
        "schema_version": 1,
        "run_id": f"run-{host}",
        "point_id": f"{host}-{point}",
        "label": f"concurrency {point}",
        "status": "measured",
        "started_at": f"2026-11-25T10:0{point}:00+00:00",
        "model": "mlp",
        "backend": "onnxruntime",
        "optimization": "none",
        "strategy": "direct",
        "scenario": "concurrency",
        "concurrency": point,
        "target_qps": np.nan,
        "valid": True,
        "invalid_reasons": "",
        "achieved_qps": 400.0 * point,
        "latency_p50_ms": 2.1,
        "cpu_util_pct": 90.0 * point,
        "rss_peak_mb": 500.0,
        "predictor_precision": "fp32",
        "config": json.dumps(config, sort_keys=True),
        "host_name": host,
        "host_cpu_model": "Test CPU",
        "host_cores": 8,
        "host_isa": "avx2,fma,avx512f,avx512_vnni",
        "host_versions": json.dumps({"onnxruntime": "1.20.0"}),
    }
    return {**row, **(calibration or {})}


def _store(folder: Path, rows: list[dict]) -> Path:
    rng = np.random.default_rng(0)
    store = ResultsStore(folder)
    for row in rows:
        service = rng.gamma(20.0, 2.0 / 20.0 / 1e3, 400)  # 2 ms a request
        store.append(row, {"compute_s": service, "ok": np.ones(len(service), dtype=bool)})
    return folder


def _calibrated(key: str, fp32: float) -> dict:
    return {**CALIBRATION, "calib_host_key": key, "calib_fp32_gflops_per_thread": fp32}


def _never(*args, **kwargs):
    raise AssertionError("planning measured the machine it runs on")


def test_each_host_is_planned_from_its_own_calibration(tmp_path, monkeypatch):
    from bench.metrics import calibration

    monkeypatch.setattr(calibration, "calibrate", _never)
    monkeypatch.setattr(calibration, "host_calibration", _never)
    # Two hosts, the same CPU string and service times, one calibrated twice as fast per thread:
    # the same work there scales to half as much on any server.
    rows = [_stored_row("fast", n, _calibrated("key-fast", 100.0)) for n in (1, 2)]
    rows += [_stored_row("slow", n, _calibrated("key-slow", 50.0)) for n in (1, 2)]
    folder = _store(tmp_path / "sweep", rows)
    plan = Plan.read(write_plan(folder, compose(["plan.peak_qps=500"])).parent)
    sizing = plan.sizing
    assert set(sizing["host_id"]) == {"fast/key-fast", "slow/key-slow"}
    assert set(sizing["host"]) == {"fast", "slow"}
    assert (
        sizing[["model", "backend", "optimization", "strategy"]].drop_duplicates().values
        == [["mlp", "onnxruntime", "none", "direct"]]
    ).all()
    by_host = sizing[sizing["tag"] == "calibrated"].pivot(
        index="server_id", columns="host", values="scale_factor"
    )
    assert len(by_host) > 10
    assert np.allclose(by_host["slow"] / by_host["fast"], 2.0)
    assert "as measured on" in plan.recommendation  # results from several hosts: which one
    # One tier label (the same CPU string), two hosts: each predicted from the other by their
    # calibrations, the slow one at half the fast one's speed per thread.
    cross = plan.cross_tier.set_index("from_host")
    assert cross.loc["fast", "to_host"] == "slow" and cross.loc["fast", "host_factor"] == 0.5
    assert cross.loc["slow", "tag"] == "calibrated" and cross.loc["slow", "host_factor"] == 2.0


def test_rows_stored_without_a_calibration_are_planned_spec_only_and_say_why(tmp_path):
    folder = _store(tmp_path / "old", [_stored_row("old-host", n, None) for n in (1, 2)])
    plan = Plan.read(write_plan(folder, compose(["plan.peak_qps=500"])).parent)
    cpu_only = plan.sizing[plan.sizing["scale_factor"].notna()]
    assert len(cpu_only) and (cpu_only["tag"] == "spec-only").all()
    assert cpu_only["notes"].str.startswith(UNCALIBRATED).all()
    assert "as measured on" not in plan.recommendation  # one host


# Modules that measure: planning and reporting load none of them.
MEASURING = (
    "torch",
    "onnxruntime",
    "bench.metrics",
    "bench.backends",
    # The scenarios are configuration, which re-planning composes; the driver measures.
    "bench.load.driver",
    "bench.load.stats",
    "bench.load.sut",
    "runners",
)


def test_replanning_on_a_fresh_cache_imports_and_measures_nothing(tmp_path):
    folder = _store(tmp_path / "run", [_stored_row("h", n, _calibrated("k", 80.0)) for n in (1, 2)])
    cache = tmp_path / "fresh-cache"
    # `python -m bench.capacity` as a user runs it: the plan, then the report with it.
    script = f"""
import sys
from bench.cli import plan_main
code = plan_main([{str(folder)!r}, "plan.peak_qps=500", "cache_dir={cache}"])
print("LOADED", sorted(m for m in sys.modules if m.startswith({MEASURING!r})))
sys.exit(code)
"""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LOADED []" in proc.stdout, proc.stdout
    assert not cache.exists()  # no calibration cached: none was made
    assert "To serve 500 requests/s" in proc.stdout
    assert (folder / "report.html").exists()
    assert time.perf_counter() - started < 120


def test_the_plan_store_reads_back_what_it_wrote_and_leaves_nothing_stale(tmp_path):
    sizing = pd.DataFrame({"server": ["a", "b"], "servers": [1.0, np.nan]})
    tables = {"First": pd.DataFrame({"x": [1]}), "Second": pd.DataFrame({"y": ["z"]})}
    written = Plan(
        recommendation="Deploy a.",
        sizing=sizing,
        formula="f",
        tables=tables,
        break_even="Serverless measured 1.00 USD per million requests.",
        manifests={"service.yaml": {"kind": "Service"}},
        image=lambda folder: (folder.mkdir(parents=True), (folder / "Dockerfile").write_text("x")),
    )
    folder = written.write(tmp_path)
    assert folder == tmp_path / "plan" and (folder / "image" / "Dockerfile").exists()
    read = Plan.read(tmp_path)
    assert read.recommendation == "Deploy a." and read.formula == "f"
    assert list(read.tables) == ["First", "Second"]
    pd.testing.assert_frame_equal(read.tables["Second"], tables["Second"])
    pd.testing.assert_frame_equal(read.sizing, sizing)
    assert read.manifests == {"service.yaml": {"kind": "Service"}}
    assert read.break_even.startswith("Serverless") and read.folder == folder
    # A plan with no deployment and no serverless points replaces all of the earlier one.
    Plan(recommendation="Nothing fits.").write(tmp_path)
    again = Plan.read(tmp_path)
    assert again.break_even == "" and again.manifests == {} and again.tables == {}
    assert not (folder / "image").exists() and not (folder / "table1.csv").exists()
    with pytest.raises(FileNotFoundError, match="no plan"):
        Plan.read(tmp_path / "elsewhere")


# --- only valid points are planned from ---------------------------------------------------------


def _invalid(row: dict, codes: list[str], reasons: str) -> dict:
    return {**row, "valid": False, "invalid_codes": json.dumps(codes), "invalid_reasons": reasons}


def test_the_planner_sizes_only_from_valid_points_and_names_them(tmp_path):
    rows = [_stored_row("h", n, _calibrated("k", 80.0)) for n in (1, 2, 4)]
    # The lightest point, the one service times would come from, had requests fail; the
    # heaviest only missed the scenario's own SLO, which leaves its measurement sound.
    rows[0] = _invalid(rows[0], ["errors"], "errors: 557 of 984 requests failed")
    rows[2] = _invalid(rows[2], ["slo"], "SLO missed: p99 80.0 ms > 50 ms")
    plan = Plan.read(write_plan(_store(tmp_path / "run", rows), compose([])).parent)
    assert plan.recommendation.startswith("To serve 100 requests/s")
    assert "Sized from the valid point(s) concurrency 2" in plan.recommendation
    assert "left out as invalid: concurrency 1 (errors: 557 of 984" in plan.recommendation
    sized = plan.sizing.dropna(subset=["servers"])
    assert (sized["sized_from"] == "concurrency 2").all()
    assert "Not sized" not in plan.recommendation
    assert sized["left_out"].str.startswith("concurrency 1 (errors").all()


def test_with_no_valid_point_the_planner_says_it_cannot_recommend_and_why(tmp_path):
    rows = [_stored_row("h", n, _calibrated("k", 80.0)) for n in (1, 2)]
    rows[0] = _invalid(rows[0], ["errors"], "errors: 557 of 984 requests failed")
    rows[1] = {**rows[1], "status": "failed", "valid": False, "error": "worker exited"}
    folder = _store(tmp_path / "run", rows)
    plan = Plan.read(write_plan(folder, compose([])).parent)
    assert plan.recommendation.startswith("Cannot recommend a deployment for 100 requests/s")
    assert "concurrency 1 (errors: 557 of 984 requests failed)" in plan.recommendation
    assert "concurrency 2 (failed: worker exited)" in plan.recommendation
    assert "invalid_reasons" in plan.recommendation  # where to read the verdicts
    assert plan.sizing.empty and plan.manifests == {}
    from reports import build_report

    html = build_report(folder).read_text()
    assert '<p class="headline warn">Cannot recommend a deployment' in html
    assert "deploy " not in html


def test_a_configuration_with_no_valid_point_is_named_and_not_sized(tmp_path):
    rows = [_stored_row("h", n, _calibrated("k", 80.0)) for n in (1, 2)]
    other = json.loads(rows[1]["config"])
    other["backend"] = {"name": "torch", "threads": 2}
    rows[1] = _invalid(
        {**rows[1], "backend": "torch", "config": json.dumps(other, sort_keys=True)},
        ["stability"],
        "unstable: across the last 3 windows throughput differs by 40%",
    )
    plan = Plan.read(write_plan(_store(tmp_path / "run", rows), compose([])).parent)
    assert set(plan.sizing["backend"]) == {"onnxruntime"}
    assert plan.recommendation.endswith(
        "Not sized, for want of a valid point: mlp / torch / none / direct."
    )


def test_a_server_a_host_measured_is_sized_from_that_host_alone(tmp_path, monkeypatch):
    from bench.metrics import calibration

    monkeypatch.setattr(calibration, "host_calibration", _never)
    # One host is a Ryzen 5 3600; the other, calibrated, is not: the Ryzen server is sized from
    # the first host's rows (measured), every other server from both.
    ryzen = {"host_cpu_model": "AMD Ryzen 5 3600 6-Core Processor", "host_cores": 12}
    rows = [{**_stored_row("ryzen", n, _calibrated("key-r", 80.0)), **ryzen} for n in (1, 2)]
    rows += [_stored_row("other", n, _calibrated("key-o", 100.0)) for n in (1, 2)]
    sizing = Plan.read(write_plan(_store(tmp_path / "sweep", rows), compose([])).parent).sizing
    on_ryzen = sizing[sizing["server_id"] == "amd-ryzen-5-3600"]
    assert list(on_ryzen["host"]) == ["ryzen"] and list(on_ryzen["tag"]) == ["measured"]
    assert set(sizing.loc[sizing["server_id"] == "amd-ryzen-7-7700", "host"]) == {"ryzen", "other"}
