"""The `serverless` strategy for real: worker processes spawned on demand on loopback, cold
starts counted and taken apart, keep-alive expiry back to zero, overflow queued or rejected,
GB-seconds recorded as usage and costed at planning; and the break-even against dedicated
servers."""

from __future__ import annotations

import asyncio
import math

import pandas as pd
import psutil
import pytest

from bench.capacity.serverless import break_even_qps, cost_per_million, serverless_costs
from bench.config import validate
from bench.models import build_model
from bench.run import run_benchmark
from bench.validation import ConfigError
from runners import Request, RunnerError, build_runner
from tests.conftest import compose

# No accuracy phase: its requests would start an instance before the load point does.
TINY = ["model=mlp", "strategy=serverless", "progress=false", "accuracy_samples=0"]
PARTS = [
    "cold_start_process_s",
    "cold_start_imports_s",
    "cold_start_model_load_s",
    "cold_start_first_inference_s",
    "cold_start_serving_s",
]


def _workers() -> set[int]:
    """Worker processes this test process started and that still run."""
    alive = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "runners.worker" in " ".join(
                child.cmdline()
            ):
                alive.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_the_first_request_pays_a_cold_start_taken_apart(backend, tmp_path, cache_dir):
    cfg = compose(
        [
            *TINY,
            f"backend={backend}",
            "scenario=single_stream",
            "scenario.warmup_s=0",
            "scenario.duration_s=0.5",
            f"cache_dir={cache_dir}",
        ]
    )
    row = run_benchmark(cfg, tmp_path).iloc[0]
    assert row["status"] == "measured" and row["errors"] == 0, row["error"]
    assert row["cold_starts"] == 1 and row["instances_peak"] == 1
    assert row["cold_start_fraction"] == pytest.approx(1 / row["invocations"])
    # One cold start: its parts, each measured, add up to it.
    assert all(row[part] >= 0 for part in PARTS)
    assert sum(row[part] for part in PARTS) == pytest.approx(row["cold_start_s"])
    assert row["cold_start_imports_s"] > 0 and row["cold_start_model_load_s"] > 0
    # An ONNX Runtime worker never imports torch (its export was made at start()).
    assert row["instances_importing_torch"] == (1 if backend == "torch" else 0)
    assert row["predictor_backend"] == backend
    # The first request waited for the instance: its latency holds the cold start.
    assert row["latency_max_ms"] >= row["cold_start_s"] * 1e3
    assert 0 < row["gb_seconds_busy"] <= row["gb_seconds_lifetime"]
    assert row["instance_rss_peak_mb"] > 20
    # The runner records usage; the price is the planner's, from the catalog's dated pricing.
    assert not any(column.startswith("cost_per_million") for column in row.index)
    pricing = dict(cfg.catalog.serverless_pricing)
    (cost,) = serverless_costs(pd.DataFrame([row]), pricing)["cost_per_million"]
    # At least the request price (USD 0.20 per million); the GB-seconds add to it.
    assert cost > 0.20
    assert cost == pytest.approx(
        cost_per_million(row["gb_seconds_busy"], row["invocations"], 0.0000166667, 0.20)
    )


def test_idle_gaps_longer_than_the_keep_alive_make_every_request_cold(tmp_path, cache_dir):
    cfg = compose(
        [
            *TINY,
            "backend=onnxruntime",
            "scenario=intermittent",
            "scenario.gap_s=1.5",
            "scenario.jitter=0.1",
            "scenario.duration_s=3.5",
            "strategy.keep_alive_s=0.05",
            "strategy.memory_mb=512",
            f"cache_dir={cache_dir}",
        ]
    )
    row = run_benchmark(cfg, tmp_path).iloc[0]
    assert row["status"] == "measured" and row["errors"] == 0
    assert row["invocations"] == 3 and row["cold_starts"] == 3
    assert row["cold_start_fraction"] == 1.0 and row["instances_peak"] == 1
    # Every request waited for a cold start: even the median one.
    assert row["latency_p50_ms"] >= 0.5 * row["cold_start_s"] * 1e3
    # Billed memory is the configured 512 MB: 0.5 GB for each second busy.
    assert row["gb_seconds_busy"] == pytest.approx(0.5 * 3 * row["cold_start_s"], rel=0.5)
    # Three requests, cold by design: too few to trust, but not "unstable".
    assert "too short" in row["invalid_reasons"] and "unstable" not in row["invalid_reasons"]


def test_an_idle_instance_stops_after_its_keep_alive(cache_dir):
    cfg = compose(
        [*TINY, "backend=onnxruntime", "strategy.keep_alive_s=0.3", f"cache_dir={cache_dir}"]
    )
    sample = build_model(cfg.model).samples(1, 0)
    before = _workers()

    async def main():
        runner = build_runner(cfg)
        await runner.start()
        try:
            started = _workers() - before
            await runner.infer(Request(0, sample))
            serving = _workers() - before
            await asyncio.sleep(0.3 + 1.0)  # the keep-alive, then SIGTERM's course
            return started, serving, runner.instances, _workers() - before, runner.facts
        finally:
            await runner.stop()

    started, serving, instances, after, facts = asyncio.run(main())
    assert started == set()  # scale to zero from the start
    assert len(serving) == 1
    assert instances == 0 and after == set()  # and back to zero once idle
    row = facts.as_row()
    assert row["cold_starts"] == 1
    # Lifetime covers the keep-alive; busy time does not.
    assert row["gb_seconds_lifetime"] > row["gb_seconds_busy"]


def test_overflow_queues_for_a_busy_instance_or_is_rejected(cache_dir):
    sample = build_model(compose(["model=mlp"]).model).samples(1, 0)

    async def burst(overflow: str, requests: int):
        cfg = compose(
            [
                *TINY,
                "backend=onnxruntime",
                "strategy.max_instances=1",
                f"strategy.overflow={overflow}",
                f"cache_dir={cache_dir}",
            ]
        )
        runner = build_runner(cfg)
        await runner.start()
        try:
            results = await asyncio.gather(
                *(runner.infer(Request(i, sample)) for i in range(requests)),
                return_exceptions=True,
            )
            return results, runner.facts.as_row()
        finally:
            await runner.stop()

    queued, row = asyncio.run(burst("queue", 3))
    assert not [r for r in queued if isinstance(r, BaseException)]
    assert row["cold_starts"] == 1 and row["invocations"] == 3 and row["rejected"] == 0
    # The two that queued waited for the instance's cold start.
    assert sorted(r.queue_s for r in queued)[1] >= 0.5 * row["cold_start_s"]

    rejected, row = asyncio.run(burst("reject", 3))
    failures = [r for r in rejected if isinstance(r, BaseException)]
    assert len(failures) == 2 and all(isinstance(f, RunnerError) for f in failures)
    assert "rejected: all 1 instances busy" in str(failures[0])
    assert row["rejected"] == 2 and row["invocations"] == 1


def test_rejections_are_errors_of_the_point_and_counted(tmp_path, cache_dir):
    cfg = compose(
        [
            *TINY,
            "backend=onnxruntime",
            "scenario=bursty",
            "scenario.burst_size=4",
            "scenario.burst_qps=1000",
            "scenario.idle_s=5",
            "scenario.duration_s=1",
            "strategy.max_instances=1",
            "strategy.overflow=reject",
            f"cache_dir={cache_dir}",
        ]
    )
    row = run_benchmark(cfg, tmp_path).iloc[0]
    assert row["status"] == "measured"
    assert row["rejected"] == row["errors"] == 3
    assert "rejected: all 1 instances busy" in row["errors_seen"]
    assert not row["valid"] and "errors: 3 of 4" in row["invalid_reasons"]


def test_unknown_prices_leave_the_cost_unknown():
    assert math.isnan(cost_per_million(10.0, 100, None, 0.2))
    assert math.isnan(cost_per_million(10.0, 0, 0.0000166667, 0.2))
    # 1 GB-s per request at USD 0.0000166667, plus 0.20 per million requests.
    assert cost_per_million(100.0, 100, 0.0000166667, 0.20) == pytest.approx(16.8667)


def test_costs_come_from_stored_usage_at_the_configured_prices():
    usage = pd.DataFrame(
        {
            "run_id": ["r", "r", "r"],
            "point_id": ["a", "b", "c"],
            "strategy": ["serverless", "serverless", "direct"],
            "status": ["measured", "measured", "measured"],
            "invocations": [100, 200, None],
            "gb_seconds_busy": [100.0, 50.0, None],
            "gb_seconds_lifetime": [300.0, 400.0, None],
        }
    )
    pricing = {
        "currency": "USD",
        "per_gb_second": 0.0000166667,
        "per_million_requests": 0.20,
        "billed_time": "busy",
        "as_of": "2026-11-25",
        "source": "https://aws.amazon.com/lambda/pricing/",
    }
    costs = serverless_costs(usage, pricing)
    assert list(costs["point_id"]) == ["a", "b"]  # serverless points only
    assert costs["cost_per_million"].iloc[0] == pytest.approx(16.8667)
    assert (costs["pricing_as_of"] == "2026-11-25").all() and (costs["currency"] == "USD").all()
    # A price change, or another billing model, is a re-plan of the same usage.
    dearer = serverless_costs(usage, {**pricing, "per_gb_second": 2 * 0.0000166667})
    assert (dearer["cost_per_million"] > costs["cost_per_million"]).all()
    lifetime = serverless_costs(usage, {**pricing, "billed_time": "lifetime"})
    assert list(lifetime["gb_seconds_billed"]) == [300.0, 400.0]
    unpriced = serverless_costs(usage, {**pricing, "per_gb_second": None})
    assert unpriced["cost_per_million"].isna().all()


def test_break_even_rate_is_where_dedicated_costs_the_same():
    month = 30.44 * 24 * 3600
    rate = break_even_qps(
        cost_per_million=2.0, dedicated_monthly_cost=100.0, seconds_per_month=month
    )
    # At that rate a month of requests costs serverless exactly the dedicated price.
    assert rate * month * 2.0 / 1e6 == pytest.approx(100.0)
    assert math.isinf(break_even_qps(0.0, 100.0, month))
    assert math.isnan(break_even_qps(math.nan, 100.0, month))


@pytest.mark.parametrize(
    "override, field",
    [
        ("strategy.max_instances=0", "strategy.max_instances"),
        ("strategy.keep_alive_s=-1", "strategy.keep_alive_s"),
        ("catalog.serverless_pricing.currency=dollars", "catalog.serverless_pricing.currency"),
    ],
)
def test_serverless_validation_names_the_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate(compose(["strategy=serverless", override]))
