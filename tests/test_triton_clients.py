"""Triton's own clients against our workers: tritonclient (HTTP with JSON and binary tensors
both ways, and gRPC) as an oracle of the protocol and its extensions, and perf_analyzer over
HTTP and gRPC. Both run from .venv-triton (tests/triton_clients.py) and skip without it."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess

import numpy as np
import pytest

from bench.backends import build_predictor
from bench.models import build_model
from runners import build_runner
from tests.conftest import compose
from tests.triton_clients import (
    PERF_ANALYZER,
    needs_perf_analyzer,
    needs_tritonclient,
    oracle,
    perf_analyzer_env,
)


@pytest.fixture(scope="module", params=["http", "grpc"])
def worker(request, cache_dir):
    """An MLP worker with dynamic batching (up to 4 items, 1 ms), over each protocol."""
    cfg = compose(
        [
            "model=mlp",
            f"strategy={request.param}",
            "strategy.batching.max_batch_size=4",
            "strategy.batching.max_queue_delay_ms=1",
            f"cache_dir={cache_dir}",
        ]
    )
    loop = asyncio.new_event_loop()
    runner = build_runner(cfg)
    loop.run_until_complete(runner.start())
    yield request.param, runner
    loop.run_until_complete(runner.stop())
    loop.close()


def _reference(runner, cache_dir) -> np.ndarray:
    cfg = runner.cfg
    bundle = build_model(cfg.model)
    predictor = build_predictor(bundle, cfg.backend, cfg.optimization, cache_dir)
    return predictor.predict([np.ones(256, np.float32)])[0]


@needs_tritonclient
def test_tritonclient_reads_what_the_worker_serves_and_is_refused_as_triton_would(
    worker, cache_dir
):
    kind, runner = worker
    rows = [[1.0] * 256, [float("nan")] + [0.5] * 255]  # the second row's outputs are all NaN
    spec = {"name": "input", "datatype": "FP32", "output": "logits", "data": rows}
    report = oracle(kind, runner.addresses[0], "mlp", json.dumps(spec))

    assert report["live"] and report["ready"] and not report["ready_v2"]
    assert {"model_configuration", "statistics"} <= set(report["extensions"])
    config = report["config"]
    # gRPC's JSON mapping writes int64 as strings: compare as integers.
    assert (config["name"], int(config["max_batch_size"])) == ("mlp", 4)
    [model_input] = config["input"]
    assert (model_input["name"], model_input["data_type"]) == ("input", "TYPE_FP32")
    assert [int(d) for d in model_input["dims"]] == [256]
    assert [int(d) for d in config["output"][0]["dims"]] == [64]
    assert int(config["dynamic_batching"]["max_queue_delay_microseconds"]) == 1000

    # Every form of request and response (HTTP: JSON or binary, each way) reads the same.
    expected = _reference(runner, cache_dir)
    assert len(report["outputs"]) == (4 if kind == "http" else 1)
    for form, (first, second) in report["outputs"].items():
        np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6, err_msg=form)
        assert second == ["nan"] * 64, form  # NaN read back as NaN, also from JSON

    bad = "400" if kind == "http" else "StatusCode.INVALID_ARGUMENT"
    missing = "404" if kind == "http" else "StatusCode.NOT_FOUND"
    assert report["unknown_input"].startswith(bad) and "no_such_input" in report["unknown_input"]
    assert report["unknown_output"].startswith(bad) and "'nope'" in report["unknown_output"]
    assert (
        report["unknown_version"].startswith(missing) and "version 2" in report["unknown_version"]
    )

    [stats] = report["stats"]["model_stats"]
    inference = stats["inference_stats"]
    # At least the four (or one) good requests of two items each, and none the model failed.
    served = len(report["outputs"])
    assert int(inference["success"]["count"]) >= served
    assert int(stats["inference_count"]) >= 2 * served
    assert int(inference.get("fail", {}).get("count", 0)) == 0
    assert int(inference["compute_infer"]["ns"]) > 0
    executions = sum(int(b["compute_infer"]["count"]) for b in stats["batch_stats"])
    assert executions == int(stats["execution_count"]) > 0


@needs_perf_analyzer
def test_perf_analyzer_measures_the_worker(worker, tmp_path):
    kind, runner = worker
    table = tmp_path / "perf.csv"
    argv = [
        str(PERF_ANALYZER),
        "-m", "mlp",
        "-u", runner.addresses[0],
        "-i", kind,
        "--concurrency-range", "2",
        "--measurement-mode", "count_windows",
        "--measurement-request-count", "40",
        # A noisy shared host: any three windows count as stable; we check it runs, not speed.
        "--stability-percentage", "999",
        "--max-trials", "3",
        "-f", str(table),
    ]  # fmt: skip
    done = subprocess.run(
        argv, env=perf_analyzer_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [row] = list(csv.DictReader(table.open()))
    assert float(row["Inferences/Second"]) > 0
    # The server-side columns come from our statistics extension.
    assert float(row["Server Compute Infer"]) > 0
    assert "Server:" in done.stdout and "Inference count:" in done.stdout
