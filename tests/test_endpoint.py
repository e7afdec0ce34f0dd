"""The `endpoint` strategy against services it did not start: our own worker over the Open
Inference Protocol, a small plain-JSON server, and nothing at all."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from bench.config import validate
from bench.models import build_model
from bench.run import run_benchmark
from bench.validation import ConfigError
from runners import Request, build_runner
from runners.endpoint import extract, render
from runners.processes import free_port_run, spawn, terminate
from runners.remote import worker_argv, worker_config, worker_env
from tests.conftest import compose

TINY = [
    "model=mlp",
    "strategy=endpoint",
    "scenario=concurrency",
    "scenario.levels=[2]",
    "scenario.warmup_s=0.2",
    "scenario.duration_s=0.6",
    "progress=false",
]


@pytest.fixture
def v2_worker(tmp_path: Path, cache_dir: str):
    """Our HTTP worker serving the MLP (torch), started on its own, as a deployed service."""
    config = tmp_path / "worker.yaml"
    config.write_text(
        worker_config(compose(["model=mlp", "strategy=http", f"cache_dir={cache_dir}"]))
    )
    port = free_port_run("127.0.0.1", 1)
    argv = worker_argv(config, "http", "127.0.0.1", port, 1 << 20)
    child = spawn("v2 worker", argv, tmp_path / "worker.log", worker_env(), stdin_pipe=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            if child.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not start:\n{child.log_tail()}")
            time.sleep(0.05)
    yield url
    asyncio.run(terminate([child], 5.0))


def test_a_v2_service_is_measured_and_serves_the_reference_outputs(v2_worker, tmp_path, cache_dir):
    cfg = compose(
        [*TINY, f"strategy.url='{v2_worker}'", f"cache_dir={cache_dir}", "accuracy_samples=4"]
    )
    row = run_benchmark(cfg, tmp_path).iloc[0]
    assert row["status"] == "measured" and row["errors"] == 0, row["error"]
    assert row["achieved_qps"] > 0
    # The outputs came through the endpoint and match the model's own.
    assert row["accuracy_cosine_min"] > 0.9999
    assert (row["strategy"], row["isolation"], row["protocol"]) == ("endpoint", "external", "http")
    # Nothing was started, so there is no cold start to report.
    assert np.isnan(row["cold_start_s"])
    # Our worker speaks the bench_worker extension: the row says what served.
    assert row["predictor_backend"] == "torch"
    # The server's own queue and compute times came back in the v2 response.
    assert row["server_compute_p50_ms"] > 0


def test_an_unreachable_endpoint_fails_its_points_naming_the_url(tmp_path, cache_dir):
    port = free_port_run("127.0.0.1", 1)
    url = f"http://127.0.0.1:{port}"
    cfg = compose(
        [*TINY, f"strategy.url='{url}'", "strategy.start_timeout_s=0.3", f"cache_dir={cache_dir}"]
    )
    row = run_benchmark(cfg, tmp_path).iloc[0]
    assert row["status"] == "failed"
    assert url in row["error"] and "not ready after 0.3 s" in row["error"]


def test_a_wrong_model_name_is_refused_at_start_naming_the_url(v2_worker, tmp_path, cache_dir):
    cfg = compose([*TINY, f"strategy.url='{v2_worker}'", "strategy.model_name=nope"])
    row = run_benchmark(cfg, tmp_path).iloc[0]
    assert row["status"] == "failed"
    assert v2_worker in row["error"] and "'nope' is not found" in row["error"]


def test_a_json_service_gets_the_template_and_answers_at_the_response_path(cache_dir):
    """A plain JSON API: {"instances": [...]} in, {"result": {"predictions": [...]}} out."""
    bodies = []

    async def predict(request: web.Request) -> web.Response:
        body = await request.json()
        bodies.append(body)
        sums = [[float(np.sum(row))] for row in body["instances"]]
        return web.json_response({"result": {"predictions": sums}})

    async def main():
        app = web.Application()
        app.router.add_post("/predict", predict)
        server = web.AppRunner(app)
        await server.setup()
        port = free_port_run("127.0.0.1", 1)
        await web.TCPSite(server, "127.0.0.1", port).start()
        cfg = compose(
            [
                *TINY,
                f"strategy.url='http://127.0.0.1:{port}/predict'",
                "strategy.protocol=json",
                'strategy.request_template=\'{"instances": {{inputs}}, "version": 2}\'',
                "strategy.response_path=result.predictions",
            ]
        )
        runner = build_runner(cfg)
        try:
            await runner.start()
            samples = build_model(cfg.model).samples(3, 7)
            response = await runner.infer(Request(0, samples))
            return samples, response
        finally:
            await runner.stop()
            await server.cleanup()

    samples, response = asyncio.run(main())
    expected = np.array([[float(np.sum(s))] for s in samples])
    assert np.allclose(response.output, expected)
    assert np.isnan(response.compute_s)
    # start() sent one request (the readiness check), then ours; both as the template says.
    assert len(bodies) == 2 and bodies[-1]["version"] == 2
    assert np.allclose(bodies[-1]["instances"], np.stack(samples))


def test_templates_and_response_paths():
    assert json.loads(render('{"x": {{inputs}}}', ["a", "b"])) == {"x": ["a", "b"]}
    assert json.loads(render("{{inputs}}", [np.array([1.0, 2.0])])) == [[1.0, 2.0]]
    doc = {"outputs": [{"data": [1, 2]}]}
    assert extract(doc, "outputs.0.data") == [1, 2]
    assert extract(doc, "") is doc
    with pytest.raises(KeyError):
        extract(doc, "predictions")


@pytest.mark.parametrize(
    "override, field",
    [
        ("strategy.url='127.0.0.1:8000'", "strategy.url"),
    ],
)
def test_endpoint_validation_names_the_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate(compose(["strategy=endpoint", override]))


def test_a_json_template_without_the_placeholder_is_refused():
    cfg = compose(
        ["strategy=endpoint", "strategy.protocol=json", "strategy.request_template='{\"x\": 1}'"]
    )
    with pytest.raises(ConfigError, match=r"strategy\.request_template"):
        validate(cfg)
