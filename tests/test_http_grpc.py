"""The `http` and `grpc` strategies for real: worker processes on loopback, uvicorn, grpcio,
nginx, driven through the same runs users make, and poked with raw clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import aiohttp
import grpc
import numpy as np
import pandas as pd
import psutil
import pytest

from bench.backends import build_predictor
from bench.models import build_model
from bench.run import run_benchmark
from runners import Request, RunnerError, build_runner, grpc_codec
from runners.grpc_v2 import inference_pb2 as pb
from runners.grpc_v2 import inference_pb2_grpc as pb_grpc
from runners.nginx import nginx_binary
from runners.protocol import InferRequest, Tensor, encode_request, items_to_tensors
from tests.conftest import alive, compose, descendants

TINY = [
    "model=mlp",
    "scenario.warmup_s=0.2",
    "scenario.duration_s=0.6",
    "progress=false",
    "accuracy_samples=4",
]


def _have_nginx() -> bool:
    try:
        nginx_binary()
    except RunnerError:
        return False
    return True


needs_nginx = pytest.mark.skipif(
    not _have_nginx(), reason="nginx is not installed (Debian: apt-get install nginx-light)"
)


# --- whole runs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy, payload", [("http", "binary"), ("http", "json"), ("grpc", None)]
)
def test_a_run_over_the_wire_serves_the_reference_outputs(strategy, payload, tmp_path, cache_dir):
    cfg = compose(
        [*TINY, f"strategy={strategy}", "scenario=concurrency", "scenario.levels=[2]"]
        + [f"cache_dir={cache_dir}"]
        + ([f"strategy.payload={payload}"] if payload else [])
    )
    rows = run_benchmark(cfg, tmp_path)
    row = rows.iloc[0]
    assert row["status"] == "measured" and row["errors"] == 0 and row["achieved_qps"] > 0
    # The outputs that came back over the wire are the model's: the encoding is right.
    assert row["accuracy_cosine_min"] > 0.9999
    assert (row["strategy"], row["protocol"], row["isolation"]) == (strategy, strategy, "process")
    parts = [
        "cold_start_process_s",
        "cold_start_imports_s",
        "cold_start_model_load_s",
        "cold_start_first_inference_s",
        "cold_start_serving_s",
    ]
    assert all(row[part] >= 0 for part in parts)
    assert sum(row[part] for part in parts) == pytest.approx(row["cold_start_s"])
    assert row["predictor_backend"] == "torch"
    # The model ran in the workers: the harness's process was the driver and client alone,
    # part of the tree's CPU, and what it spent per request is stated.
    assert 0 < row["harness_cpu_cores_used"] <= row["cpu_cores_used"]
    assert row["client_cpu_ms_per_request"] == pytest.approx(
        1e3 * row["harness_cpu_cores_used"] / row["achieved_qps"]
    )
    # The server's own queue and compute times came back with every request.
    log = pd.read_parquet(tmp_path / "requests" / f"{row['point_id']}.parquet")
    assert log["compute_s"].notna().all() and (log["compute_s"] > 0).all()


@pytest.mark.slow
def test_minilm_over_http_sends_sentences_as_bytes_tensors(tmp_path, cache_dir):
    cfg = compose(
        [*TINY, "model=minilm", "strategy=http", "scenario=single_stream", f"cache_dir={cache_dir}"]
    )
    row = run_benchmark(cfg, tmp_path).iloc[0]
    assert row["status"] == "measured" and row["errors"] == 0
    assert row["accuracy_cosine_min"] > 0.9999


# --- replicas and nginx ------------------------------------------------------------------------


async def _served_per_replica(runner, requests: int) -> list[int]:
    """Send `requests` one-item requests; return how many items each replica's core served."""
    sample = build_model(runner.cfg.model).samples(1, 0)
    for i in range(requests):
        await runner.infer(Request(i, sample))
    served = []
    for target in runner.addresses:  # each worker's facts, over its own protocol
        sizes = (await runner._worker_facts(target))["batch_sizes"]
        served.append(sum(int(size) * count for size, count in sizes.items()))
    return served


@pytest.mark.parametrize(
    "strategy,load_balancer",
    [
        ("http", "none"),
        pytest.param("http", "nginx", marks=needs_nginx),
        # gRPC through nginx: grpc_pass over HTTP/2 to keep-alive upstreams.
        pytest.param("grpc", "nginx", marks=needs_nginx),
    ],
    ids=["http-client", "http-nginx", "grpc-nginx"],
)
def test_requests_spread_over_replicas_and_nothing_outlives_stop(
    strategy, load_balancer, cache_dir
):
    cfg = compose(
        [
            "model=mlp",
            f"strategy={strategy}",
            "strategy.replicas=2",
            f"strategy.load_balancer={load_balancer}",
            f"cache_dir={cache_dir}",
        ]
    )
    before = descendants()

    async def main():
        runner = build_runner(cfg)
        await runner.start()
        try:
            started = descendants() - before
            return started, runner.facts, await _served_per_replica(runner, 10)
        finally:
            await runner.stop()

    started, facts, served = asyncio.run(main())
    # Two workers, plus nginx's master and worker when it is in front.
    assert len(started) == (2 if load_balancer == "none" else 4)
    assert (facts.replicas, facts.load_balancer) == (2, load_balancer)
    # A request to each replica on start-up (and one through nginx), then round robin, from
    # the client or from nginx.
    assert sum(served) == 2 + (load_balancer == "nginx") + 10 and min(served) >= 5
    # backend.threads was null: each replica's probe tried at most its share of the cores.
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert 1 <= facts.predictor["predictor_threads"] <= share
    assert facts.predictor["predictor_threads_choice"].startswith(
        "one core for this predictor" if share == 1 else "probed"
    )
    assert alive(started) == set()


# --- one served model, poked with raw clients ----------------------------------------------------


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def http_runner(loop, cache_dir):
    """An MLP behind uvicorn with dynamic batching and a small request size limit."""
    cfg = compose(
        [
            "model=mlp",
            "strategy=http",
            "strategy.workers=1",
            "strategy.batching.max_batch_size=8",
            "strategy.batching.max_queue_delay_ms=5",
            "strategy.max_request_bytes=65536",
            f"cache_dir={cache_dir}",
        ]
    )
    runner = build_runner(cfg)
    loop.run_until_complete(runner.start())
    yield runner
    loop.run_until_complete(runner.stop())


def test_dynamic_batching_over_http_forms_batches_and_keeps_outputs_right(
    loop, http_runner, cache_dir
):
    bundle = build_model(http_runner.cfg.model)
    samples = bundle.samples(16, 7)
    cfg = http_runner.cfg
    reference = build_predictor(bundle, cfg.backend, cfg.optimization, cache_dir).predict(samples)

    async def burst():
        return await asyncio.gather(
            *(http_runner.infer(Request(i, [sample])) for i, sample in enumerate(samples))
        )

    responses = loop.run_until_complete(burst())
    served = np.concatenate([r.output for r in responses])
    np.testing.assert_allclose(served, reference, rtol=1e-5, atol=1e-6)
    formed = http_runner.facts.batch_sizes_formed
    assert max(formed) > 1 and max(formed) <= 8
    assert json.loads(http_runner.facts.as_row()["batch_sizes_formed"])
    # A batched request waited for its batch; its compute time is the whole batch's.
    assert max(r.queue_s for r in responses) > 0


async def _post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers or {}) as response:
            return response.status, await response.json(content_type=None)


async def _get(url: str) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return response.status


def test_bad_http_requests_get_4xx_with_a_reason_and_the_server_goes_on(loop, http_runner):
    base = f"http://{http_runner.addresses[0]}/v2/models"
    infer = f"{base}/mlp/infer"
    good, headers = encode_request(
        InferRequest(items_to_tensors([np.ones(256, np.float32)])), binary=True
    )
    wrong_width, _ = encode_request(
        InferRequest(items_to_tensors([np.ones(3, np.float32)])), binary=False
    )
    cases = [
        (infer, b"{not json", {}, 400, "not valid JSON"),
        (infer, wrong_width, {}, 400, "the model takes [-1, 256]"),
        (infer, b"x" * 70_000, {}, 413, "limit"),
        (f"{base}/resnet/infer", good, headers, 404, "not found"),
    ]
    for url, body, extra, status, reason in cases:
        got, document = loop.run_until_complete(_post(url, body, extra))
        assert got == status and reason in document["error"], (url, document)
    assert loop.run_until_complete(_get(infer)) == 405
    assert (
        loop.run_until_complete(_get(f"http://{http_runner.addresses[0]}/v2/health/ready")) == 200
    )
    status, document = loop.run_until_complete(_post(infer, good, headers))
    assert status == 200 and document is not None
    # And through the runner, as the load driver sends.
    response = loop.run_until_complete(http_runner.infer(Request(0, [np.ones(256, np.float32)])))
    assert response.output.shape == (1, 64)


def test_bad_grpc_requests_get_an_error_status_and_the_server_goes_on(cache_dir):
    cfg = compose(
        ["model=mlp", "strategy=grpc", "strategy.max_request_bytes=65536", f"cache_dir={cache_dir}"]
    )

    async def main():
        runner = build_runner(cfg)
        await runner.start()
        try:
            async with grpc.aio.insecure_channel(runner.addresses[0]) as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                codes = []
                for items in ([np.ones(3, np.float32)], [np.ones(20_000, np.float32)]):
                    message = grpc_codec.request_message(
                        "mlp", InferRequest(items_to_tensors(items))
                    )
                    try:
                        await stub.ModelInfer(message)
                    except grpc.aio.AioRpcError as exc:
                        codes.append(exc.code())
                wrong = InferRequest([Tensor.from_array("input", np.ones((1, 256), np.float32))])
                try:
                    await stub.ModelInfer(grpc_codec.request_message("resnet", wrong))
                except grpc.aio.AioRpcError as exc:
                    codes.append(exc.code())
                metadata = await stub.ModelMetadata(pb.ModelMetadataRequest(name="mlp"))
            return codes, metadata, await runner.infer(Request(0, [np.ones(256, np.float32)]))
        finally:
            await runner.stop()

    codes, metadata, response = asyncio.run(main())
    assert codes == [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.NOT_FOUND,
    ]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("input", "FP32", [-1, 256])
    ]
    assert response.output.shape == (1, 64)


# --- failures and clean-up ---------------------------------------------------------------------


def test_a_worker_that_cannot_start_fails_the_start_with_its_log_and_leaves_nothing(cache_dir):
    cfg = compose(
        [
            "model=mlp",
            "strategy=http",
            "backend=onnxruntime",
            "backend.provider=NoSuchExecutionProvider",
            f"cache_dir={cache_dir}",
        ]
    )
    before = descendants()
    runner = build_runner(cfg)
    with pytest.raises(RunnerError, match="NoSuchExecutionProvider"):
        asyncio.run(runner.start())
    assert descendants() - before == set()


_HARNESS = """
import asyncio, sys
from runners import build_runner
from tests.conftest import compose

async def main():
    runner = build_runner(compose(["model=mlp", "strategy=grpc", "cache_dir=" + sys.argv[1]]))
    await runner.start()
    print("started", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_workers_stop_when_the_harness_is_killed(cache_dir, tmp_path):
    harness = subprocess.Popen(
        [sys.executable, "-c", _HARNESS, cache_dir],
        stdout=subprocess.PIPE,
        # The killed harness cannot remove its temporary folder: keep it in the test's own.
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(tmp_path)},
    )
    try:
        assert harness.stdout.readline() == b"started\n"
        workers = {p.pid for p in psutil.Process(harness.pid).children(recursive=True)}
        assert workers
        harness.send_signal(signal.SIGKILL)  # no stop(), no finally: only the pipe closes
        harness.wait()
        deadline = time.monotonic() + 10
        while alive(workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive(workers) == set()
    finally:
        harness.kill()
        harness.wait()
