"""The `endpoint` strategy against services it did not start: our own worker over the Open
Inference Protocol, a small plain-JSON server, and nothing at all."""

from __future__ import annotations

import asyncio
import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
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
from tests.conftest import checkout_env, compose

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


# --- a service that requires a credential ------------------------------------------------------

TOKEN = "s3cret-token-4f1c9b2e7d"


class _Guarded(http.server.ThreadingHTTPServer):
    """A v2 service on loopback that answers only requests bearing `Bearer TOKEN`."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _GuardedHandler)
        self.authorized = self.refused = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _GuardedHandler(http.server.BaseHTTPRequestHandler):
    server: _Guarded

    def log_message(self, *args) -> None:
        pass

    def _allowed(self) -> bool:
        allowed = self.headers.get("Authorization") == f"Bearer {TOKEN}"
        if allowed:
            self.server.authorized += 1
        else:
            self.server.refused += 1
            self._reply(401, {"error": "unauthorized"})
        return allowed

    def do_GET(self) -> None:
        if self._allowed():
            ready = self.path.endswith("/ready")
            self._reply(200, {"ready": True} if ready else {"extensions": []})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self._allowed():
            output = {"name": "output", "datatype": "FP32", "shape": [1, 4], "data": [0.5] * 4}
            self._reply(200, {"model_name": "mlp", "outputs": [output]})

    def _reply(self, status: int, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def guarded():
    server = _Guarded()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join()


def _every_file_holds_no(secret: str, folder: Path) -> None:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    for path in folder.rglob("*.parquet"):
        frame = pd.read_parquet(path)
        assert not frame.astype(str).apply(lambda c: c.str.contains(secret)).any().any(), path


def test_a_token_from_the_environment_reaches_the_service_and_nothing_the_run_writes(
    guarded, tmp_path, cache_dir
):
    run = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable, "-m", "bench", *TINY, "accuracy_samples=0", f"cache_dir={cache_dir}",
            f"strategy.url={guarded.url}", "strategy.token_env=BENCH_TEST_TOKEN",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
        env={**checkout_env(), "BENCH_TEST_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert guarded.authorized > 10 and guarded.refused == 0
    assert (run / ".hydra" / "config.yaml").exists() and (run / "report.html").exists()
    _every_file_holds_no(TOKEN, run)
    assert TOKEN not in proc.stdout + proc.stderr


def test_a_token_file_works_and_a_missing_token_fails_naming_the_field(
    guarded, tmp_path, cache_dir
):
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    given = [*TINY, "accuracy_samples=0", f"cache_dir={cache_dir}", f"strategy.url={guarded.url}"]
    rows = run_benchmark(compose([*given, f"strategy.token_file={secret}"]), tmp_path / "a")
    assert rows["status"].eq("measured").all() and rows["errors"].eq(0).all()
    missing = compose([*given, "strategy.token_env=BENCH_NO_SUCH_TOKEN"])
    row = run_benchmark(missing, tmp_path / "b").iloc[0]
    assert row["status"] == "failed"
    assert "strategy.token_env=BENCH_NO_SUCH_TOKEN: the environment has no" in row["error"]
    _every_file_holds_no(TOKEN, tmp_path / "a")


def test_the_token_comes_from_one_place_only():
    with pytest.raises(ConfigError, match="strategy.token_env"):
        validate(compose(["strategy=endpoint", "strategy.token_env=A", "strategy.token_file=f"]))
