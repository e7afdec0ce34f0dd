"""Monitoring for real: a real Prometheus scraping a running worker and evaluating the plan's
rules and the dashboard's queries, promtool checking the rules and running unit tests of the
burn-rate alerts, and the server's view scraped into a run's rows."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench import monitoring as names
from bench.capacity.manifests import Deployment
from bench.capacity.monitoring import (
    ALERTS,
    DASHBOARD,
    PROMETHEUS_RULE,
    SERVICE_MONITOR,
    Objective,
    monitoring,
)
from bench.capacity.plan import write_plan
from bench.metrics.scrape import COLUMNS, histogram_quantile, parse, server_view
from bench.models import build_model
from bench.run import run_benchmark
from runners import Request, build_runner
from runners.processes import free_port_run
from tests.conftest import LENIENT, compose
from tests.test_endpoint import v2_worker  # noqa: F401 (a fixture)

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
needs_prometheus = pytest.mark.skipif(
    not Path(PROMETHEUS).exists(),
    reason="prometheus is not installed (Debian: apt-get install prometheus)",
)
needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).exists(),
    reason="promtool is not installed (Debian: apt-get install prometheus)",
)

TINY = [
    "model=mlp",
    "scenario=concurrency",
    "scenario.levels=[2]",
    "scenario.warmup_s=0.2",
    "scenario.duration_s=0.8",
    "progress=false",
    "accuracy_samples=4",
]
# The plan's deployment and objective, as the planner would make them for the MLP.
DEPLOYMENT = Deployment("mlp-torch", "img", 3, 2, 3, 1, 200.0, 77)
OBJECTIVE = Objective("mlp", "p99", 100.0, 100.0, 48.5)


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


class _Prometheus:
    """A real Prometheus on loopback, scraping `targets` every second as job `job`, evaluating
    `rules` every second."""

    def __init__(self, folder: Path, job: str, targets: list[str], rules: Path) -> None:
        port = free_port_run("127.0.0.1", 1)
        self.url = f"http://127.0.0.1:{port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (folder / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            assert self.process.poll() is None and time.monotonic() < deadline, "no Prometheus"
            time.sleep(0.1)

    def query(self, expr: str) -> list[dict]:
        found = _get(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
        assert found["status"] == "success", (expr, found)
        return found["data"]["result"]

    def until(self, expr: str, ok, timeout_s: float = 30) -> list[dict]:
        """The query's result once `ok(result)`; fails after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not ok(result := self.query(expr)):
            assert time.monotonic() < deadline, f"{expr}: {result}"
            time.sleep(0.25)
        return result

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.log.close()


@needs_prometheus
def test_a_real_prometheus_scrapes_a_grpc_worker_and_runs_the_plans_rules_and_queries(
    tmp_path, cache_dir
):
    rules = tmp_path / ALERTS
    rules.write_text(yaml.safe_dump(monitoring(DEPLOYMENT, OBJECTIVE)[ALERTS]))
    dashboard = monitoring(DEPLOYMENT, OBJECTIVE)[DASHBOARD]

    async def scenario() -> None:
        # gRPC: the metrics are on an HTTP port of the worker's own.
        cfg = compose(["model=mlp", "strategy=grpc", f"cache_dir={cache_dir}"])
        runner = build_runner(cfg)
        await runner.start()
        prometheus = None
        try:
            (url,) = runner.metrics_source().urls
            target = urllib.parse.urlsplit(url).netloc
            prometheus = _Prometheus(tmp_path, DEPLOYMENT.name, [target], rules)
            await asyncio.to_thread(prometheus.ready)
            # Sent after the first scrape, so the counters rise between samples (a counter's
            # first sample is no increase to `rate`).
            first = f'{names.REQUESTS}{{job="{DEPLOYMENT.name}"}}'
            await asyncio.to_thread(prometheus.until, first, bool)
            sample = build_model(cfg.model).samples(1, 0)
            for i in range(40):
                await runner.infer(Request(i, sample))
            await asyncio.to_thread(check, prometheus)
        finally:
            if prometheus is not None:
                prometheus.stop()
            await runner.stop()

    def check(prometheus: _Prometheus) -> None:
        sel = f'{{job="{DEPLOYMENT.name}",model="mlp"}}'
        # Its start-up inference is not a request; the 40 sent are (the runner's warm-up one
        # too).
        served = prometheus.until(
            f"{names.REQUESTS}{sel}", lambda r: r and float(r[0]["value"][1]) >= 40
        )
        assert float(served[0]["value"][1]) == 41
        (info,) = prometheus.query(f"{names.MODEL_INFO}{sel}")
        assert info["metric"]["backend"] == "torch" and info["metric"]["optimization"] == "none"
        assert len(info["metric"]["fingerprint"]) == 16
        timed = prometheus.query(f'{names.LATENCY}_bucket{{le="+Inf",model="mlp"}}')
        assert float(timed[0]["value"][1]) == 41
        # The SLO (the plan's 100 ms) is a bucket of the worker's, where the rules count.
        assert prometheus.query(f'{names.LATENCY}_bucket{{le="0.1",model="mlp"}}')
        calls = prometheus.query(f'{names.BATCH_SIZE}_bucket{{le="1.0",model="mlp"}}')
        assert float(calls[0]["value"][1]) == 41  # one request per predictor call, no batching

        # The plan's recording rules evaluate over the scraped series: a share of slow
        # requests, and none failed.
        def evaluated(result: list[dict]) -> bool:  # NaN until two scrapes are in the window
            return bool(result) and not np.isnan(float(result[0]["value"][1]))

        slow = prometheus.until("model:bench_requests_slow:ratio_rate5m", evaluated)
        assert 0 <= float(slow[0]["value"][1]) <= 1
        failed = prometheus.until("model:bench_requests_failed:ratio_rate5m", evaluated)
        assert float(failed[0]["value"][1]) == 0
        # Every dashboard query is valid PromQL and finds series (Grafana puts at least four
        # scrape intervals in place of $__rate_interval).
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "1m")
                assert prometheus.until(expr, bool), (panel["title"], expr)

    asyncio.run(scenario())


def test_the_worker_without_metrics_serves_none_and_the_run_scrapes_nothing(tmp_path, cache_dir):
    async def scenario() -> None:
        cfg = compose(["model=mlp", "strategy=http", "strategy.metrics=false"])
        runner = build_runner(cfg)
        await runner.start()
        try:
            assert runner.metrics_source() is None
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"http://{runner.addresses[0]}/metrics", timeout=5)
            assert refused.value.code == 404
        finally:
            await runner.stop()

    asyncio.run(scenario())


def test_a_run_stores_the_servers_view_and_its_plan_writes_monitoring(tmp_path, cache_dir):
    overrides = [*TINY, *LENIENT, "strategy=http", "strategy.replicas=2", f"cache_dir={cache_dir}"]
    row = run_benchmark(compose(overrides), tmp_path).iloc[0]
    assert row["status"] == "measured" and row["errors"] == 0, row["error"]
    # Both replicas scraped, their counters summed: the server saw every request the client
    # sent during the point, and took less time over each than the client waited for it.
    assert row["server_metrics"] == "bench" and row["server_metrics_error"] == ""
    assert row["server_requests"] == row["client_point_requests"] >= row["requests"] > 0
    assert row["server_failures"] == 0
    assert 0 < row["server_latency_mean_ms"] < row["client_point_latency_mean_ms"]
    assert row["network_client_mean_ms"] == pytest.approx(
        row["client_point_latency_mean_ms"] - row["server_latency_mean_ms"]
    )
    assert row["server_latency_p50_ms"] <= row["server_latency_p99_ms"]
    assert row["server_queue_mean_ms"] >= 0 and row["server_compute_mean_ms"] > 0
    assert row["server_batch_size_mean"] == 1

    plan = write_plan(tmp_path, compose(overrides))
    folder = plan / "monitoring"
    rules = yaml.safe_load((folder / ALERTS).read_text())
    resource = yaml.safe_load((folder / PROMETHEUS_RULE).read_text())
    assert resource["kind"] == "PrometheusRule" and resource["spec"]["groups"] == rules["groups"]
    # The ServiceMonitor finds the plan's Service by its labels, and the pods' port by name.
    monitor = yaml.safe_load((folder / SERVICE_MONITOR).read_text())
    service = yaml.safe_load((plan / "kubernetes" / "service.yaml").read_text())
    deployment = yaml.safe_load((plan / "kubernetes" / "deployment.yaml").read_text())
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert endpoint["port"] in {port["name"] for port in container["ports"]}
    # The rules select the job Prometheus Operator names after the Service.
    assert f'job="{service["metadata"]["name"]}"' in (folder / ALERTS).read_text()
    assert json.loads((folder / DASHBOARD).read_text())["panels"]
    # The image's worker cuts its latency buckets at the plan's SLO, where the rules look.
    served = yaml.safe_load((plan / "image" / "serving.yaml").read_text())
    assert served["plan"]["slo_ms"] == 100.0
    if Path(PROMTOOL).exists():
        check = subprocess.run(
            [PROMTOOL, "check", "rules", str(folder / ALERTS)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr


def test_an_endpoint_run_scrapes_the_metrics_url_it_is_given(v2_worker, tmp_path, cache_dir):  # noqa: F811
    url = f"{v2_worker}/metrics"
    overrides = [
        *TINY,
        "strategy=endpoint",
        f"strategy.url='{v2_worker}'",
        f"cache_dir={cache_dir}",
    ]
    row = run_benchmark(compose([*overrides, f"strategy.metrics_url='{url}'"]), tmp_path).iloc[0]
    assert row["status"] == "measured" and row["server_metrics"] == "bench"
    assert row["server_requests"] == row["client_point_requests"] > 0
    # A URL that serves no metrics is said in the row; the point is still measured.
    bad = f"{v2_worker}/v2/health/ready"
    row = run_benchmark(compose([*overrides, f"strategy.metrics_url='{bad}'"]), tmp_path / "b")
    row = row.iloc[0]
    assert row["status"] == "measured" and row["server_metrics"] == ""
    assert bad in row["server_metrics_error"] and np.isnan(row["server_requests"])


def _series(name: str, values: str, **labels: str) -> dict:
    every = {"job": DEPLOYMENT.name, "model": "mlp", **labels}
    text = ",".join(f'{k}="{v}"' for k, v in every.items())
    return {"series": f"{name}{{{text}}}", "values": values}


def _load(per_minute: int, slow: int, failed: int, replicas: int = 1) -> list[dict]:
    """Two hours of synthetic counters: `per_minute` requests a minute, `slow` of them over the
    SLO (0.1 s), `failed` failing in the model."""
    good = per_minute - slow
    return [
        _series(names.REQUESTS, f"0+{per_minute}x120"),
        _series(f"{names.LATENCY}_count", f"0+{per_minute}x120"),
        _series(f"{names.LATENCY}_bucket", f"0+{good}x120", le="0.1"),
        _series(names.FAILURES, f"0+{failed}x120", reason=names.MODEL_ERROR),
        *(_series(names.MODEL_INFO, "1x120", pod=f"p{i}") for i in range(replicas)),
    ]


@needs_promtool
def test_promtool_runs_unit_tests_of_the_burn_rate_and_saturation_alerts(tmp_path):
    documents = monitoring(DEPLOYMENT, OBJECTIVE)
    (tmp_path / ALERTS).write_text(yaml.safe_dump(documents[ALERTS]))
    alerts = {rule["alert"]: rule for rule in documents[ALERTS]["groups"][1]["rules"]}
    annotated = {}
    for group in documents[ALERTS]["groups"][1:]:
        for rule in group["rules"]:
            annotated[rule["alert"], rule["labels"]["severity"]] = rule["annotations"]

    def fired(name: str, *severities: str) -> dict:
        labels = {"job": DEPLOYMENT.name, "model": "mlp"}
        return {
            "alertname": name,
            "exp_alerts": [
                {"exp_labels": {**labels, "severity": s}, "exp_annotations": annotated[name, s]}
                for s in severities
            ],
        }

    latency, errors = "MlpTorchLatencyBudgetBurn", "MlpTorchErrorsBudgetBurn"
    saturated, peak = "MlpTorchSaturated", "MlpTorchAbovePlannedPeak"
    assert {latency, errors, saturated, peak} == set(alerts)
    quiet = [{"alertname": name, "exp_alerts": []} for name in alerts]
    at = {"eval_time": "70m"}
    tests = [
        # 20% slow: past 14.4x the 1% budget over 1h and 5m (a page), and 3x over 1d and 2h.
        {
            "interval": "1m",
            "input_series": _load(600, slow=120, failed=0),
            "alert_rule_test": [
                {**at, **fired(latency, "page", "ticket")},
                {**at, "alertname": errors, "exp_alerts": []},
            ],
        },
        # 10% failing: under 14.4x, past 6x over 6h and 30m (a page), and 3x over 1d and 2h.
        {
            "interval": "1m",
            "input_series": _load(600, slow=0, failed=60),
            "alert_rule_test": [
                {**at, **fired(errors, "page", "ticket")},
                {**at, "alertname": latency, "exp_alerts": []},
            ],
        },
        # Under the budget (0.5% slow, 0.5% failing) and the capacity: nothing fires.
        {
            "interval": "1m",
            "input_series": _load(600, slow=3, failed=3),
            "alert_rule_test": [{**at, **q} for q in quiet],
        },
        # 60 requests/s on one replica, over the 48.5 it was planned to take; under the peak.
        {
            "interval": "1m",
            "input_series": _load(3600, slow=0, failed=0),
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": saturated, "exp_alerts": []},  # not yet 10m
                {**at, **fired(saturated, "page")},
                {**at, "alertname": peak, "exp_alerts": []},
            ],
        },
        # The same load on two replicas is within their capacity.
        {
            "interval": "1m",
            "input_series": _load(3600, slow=0, failed=0, replicas=2),
            "alert_rule_test": [{**at, "alertname": saturated, "exp_alerts": []}],
        },
    ]
    suite = tmp_path / "alerts_test.yaml"
    suite.write_text(
        yaml.safe_dump({"rule_files": [ALERTS], "evaluation_interval": "1m", "tests": tests})
    )
    result = subprocess.run(
        [PROMTOOL, "test", "rules", suite.name], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_p50_target_keeps_only_the_burn_rates_that_can_fire():
    # Half the requests may be slow: 14.4x, 6x and 3x that budget are shares over 1.
    o = Objective("mlp", "p50", 100.0, 100.0, 48.5)
    rules = monitoring(DEPLOYMENT, o)[ALERTS]["groups"][1]["rules"]
    burns = [rule for rule in rules if rule["alert"].endswith("BudgetBurn")]
    assert [rule["labels"]["severity"] for rule in burns] == ["ticket", "ticket"]
    assert all("ratio_rate3d" in rule["expr"] and "rate1h" not in rule["expr"] for rule in burns)


TRITON = """\
# HELP nv_inference_request_success Number of successful inference requests
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="mlp",version="1"} {ok}
nv_inference_request_success{model="other",version="1"} 999
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{model="mlp",reason="BACKEND",version="1"} {failed}
# TYPE nv_inference_count counter
nv_inference_count{model="mlp",version="1"} {items}
# TYPE nv_inference_exec_count counter
nv_inference_exec_count{model="mlp",version="1"} {calls}
# TYPE nv_inference_request_duration_us counter
nv_inference_request_duration_us{model="mlp",version="1"} {us}
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{model="mlp",version="1"} {queue_us}
"""


def test_a_triton_exposition_is_read_in_its_own_names_for_the_served_model_only():
    def text(**values: float) -> str:
        out = TRITON
        for key, value in values.items():
            out = out.replace(f"{{{key}}}", str(value))
        return out

    before = parse([text(ok=10, failed=1, items=40, calls=10, us=5000, queue_us=1000)], "mlp")
    after = parse([text(ok=110, failed=3, items=440, calls=60, us=105_000, queue_us=21_000)], "mlp")
    view = server_view(before, after)
    assert view["server_metrics"] == "triton"
    assert (view["server_requests"], view["server_failures"]) == (102, 2)
    assert view["server_latency_mean_ms"] == pytest.approx(1.0)  # 100 ms over 100 successes
    assert view["server_queue_mean_ms"] == pytest.approx(0.2)
    assert view["server_batch_size_mean"] == pytest.approx(8.0)
    assert np.isnan(view["server_latency_p99_ms"])  # Triton's counters hold no distribution
    assert set(view) <= set(COLUMNS)


def test_histogram_quantiles_interpolate_within_buckets_as_prometheus_does():
    buckets = [(0.1, 50.0), (0.2, 90.0), (0.4, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.3)
    assert histogram_quantile(0.99, [(0.1, 1.0), (float("inf"), 10.0)]) == 0.1
    assert np.isnan(histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]))


def test_latency_buckets_are_cut_at_the_slo():
    buckets = names.latency_buckets(0.1)
    assert 0.1 in buckets and buckets == tuple(sorted(buckets))
    assert names.bucket_label(0.1) == "0.1" and names.bucket_label(buckets[6]) == "0.075"
    assert names.slo_seconds(compose(["scenario=server", "scenario.slo_ms=40"])) == 0.04
    assert names.slo_seconds(compose(["plan.slo_ms=250"])) == 0.25
    assert names.batch_buckets(1) == (1,) and names.batch_buckets(12) == (1, 2, 4, 8, 12)
