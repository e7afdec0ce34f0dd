"""Model integrity: every row records `model_sha256`, the SHA-256 of the artifact its worker
loaded, and a point whose worker loaded another artifact than the harness expected fails,
saying so. Real workers, real files."""

from __future__ import annotations

import asyncio
import hashlib
import shutil

from bench.backends.artifact import expected_artifact, weights_artifact
from bench.backends.onnx_export import onnx_path
from bench.models import build_model
from bench.run import integrity_error, run_benchmark
from runners import build_runner
from tests.conftest import LENIENT, compose

TINY = [
    "scenario.levels=[1,2]",
    "scenario.warmup_s=0.2",
    "scenario.duration_s=0.5",
    "progress=false",
    "report=false",
    "plan.enabled=false",
    "accuracy_samples=4",
    *LENIENT,
]


def _exports(cache_dir: str) -> tuple:
    """Two ONNX files with the same inputs and outputs and other weights (mlp, two seeds)."""
    return tuple(
        onnx_path(build_model(compose(["model=mlp", f"model.seed={s}"]).model), cache_dir, 18)
        for s in (0, 1)
    )


def test_every_row_records_the_sha256_of_the_artifact_its_worker_loaded(tmp_path, cache_dir):
    # A built-in model on torch: its weights, as built, in name order.
    cfg = compose(["model=mlp", *TINY, f"cache_dir={cache_dir}"])
    rows = run_benchmark(cfg, tmp_path / "torch")
    weights = weights_artifact("mlp", build_model(cfg.model).load_module())
    assert (rows["model_sha256"] == weights.sha256).all()
    assert (rows["model_sha256_expected"] == weights.sha256).all()
    assert rows["model_artifact"].iloc[0] == "mlp weights (6 tensors)"

    # A user's ONNX file, served by a worker process: the file's bytes, as sha256sum says.
    user = tmp_path / "model.onnx"
    shutil.copy(_exports(cache_dir)[0], user)
    served = [
        "model=onnx_file", f"model.path={user}", "backend=onnxruntime", "strategy=http",
        "scenario.levels=[1]", *TINY[1:], f"cache_dir={cache_dir}",
    ]  # fmt: skip
    rows = run_benchmark(compose(served), tmp_path / "http")
    assert (rows["status"] == "measured").all()
    assert rows["model_sha256"].iloc[0] == hashlib.sha256(user.read_bytes()).hexdigest()
    assert rows["model_artifact"].iloc[0] == str(user)


def test_an_onnx_file_replaced_before_the_worker_loads_it_is_caught(tmp_path, cache_dir):
    first, second = _exports(cache_dir)
    user = tmp_path / "model.onnx"
    shutil.copy(first, user)
    cfg = compose(
        ["model=onnx_file", f"model.path={user}", "backend=onnxruntime", "strategy=http",
         f"cache_dir={cache_dir}"]
    )  # fmt: skip
    expected = expected_artifact(build_model(cfg.model), cfg.backend, cfg.optimization, cache_dir)
    shutil.copy(second, user)  # the file changes after the harness read it

    async def worker_facts() -> dict:
        runner = build_runner(cfg)
        await runner.start()
        try:
            return runner.facts.predictor
        finally:
            await runner.stop()

    loaded = asyncio.run(worker_facts())
    assert loaded["model_sha256"] == hashlib.sha256(second.read_bytes()).hexdigest()
    assert expected.sha256 == hashlib.sha256(first.read_bytes()).hexdigest()
    said = integrity_error(loaded, expected)
    assert said.startswith(
        f"model integrity: the worker loaded model_sha256 {loaded['model_sha256'][:16]}"
    )
    assert f"the harness expected {expected.sha256[:16]}" in said
    assert integrity_error(loaded, None) == "" and integrity_error({}, expected) == ""


def test_a_worker_that_builds_another_model_fails_every_point_saying_why(tmp_path, cache_dir):
    # The harness and each worker build a model whose build() is unseeded: other weights.
    cfg = compose(
        ["model=python", "model.target=tests.unseeded_model:build", "strategy=http", *TINY,
         f"cache_dir={cache_dir}"]
    )  # fmt: skip
    rows = run_benchmark(cfg, tmp_path)
    assert len(rows) == 2 and (rows["status"] == "failed").all()
    assert rows["error"].str.startswith("model integrity: the worker loaded model_sha256").all()
    assert (rows["model_sha256_expected"] != "").all()
