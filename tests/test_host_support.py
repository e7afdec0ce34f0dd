"""A configuration this host cannot run is refused before anything is measured, naming the
field and what the host has; the run folder stays empty of results."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.host_support import HostCannotRun, check_host
from bench.metrics.gpu import gpu_names
from bench.run import run_benchmark
from tests.conftest import checkout_env, compose

no_gpu = pytest.mark.skipif(bool(gpu_names()), reason="this host has a GPU")


@no_gpu
@pytest.mark.parametrize(
    "overrides, said",
    [
        (
            ["backend=onnxruntime", "backend.provider=CUDAExecutionProvider"],
            # Where ONNX Runtime lists the provider (the GPU wheel) or, elsewhere, does not.
            "backend.provider=CUDAExecutionProvider: this host('s ONNX Runtime offers| has no "
            "GPU [(]NVML sees none[)])",
        ),
        (["optimization=fp16"], "optimization=fp16: runs on a GPU, and backend.device is cpu"),
        (
            ["backend=onnxruntime", "optimization=fp16"],
            "optimization=fp16: runs on a GPU provider, and backend.provider is "
            "CPUExecutionProvider; this host has no GPU",
        ),
        (["backend.device=cuda"], "backend.device=cuda: torch here sees no CUDA device"),
    ],
)
def test_what_this_host_lacks_is_refused_before_measuring(overrides, said, tmp_path):
    with pytest.raises(HostCannotRun, match=said):
        run_benchmark(compose(["model=mlp", *overrides]), tmp_path)
    assert not (tmp_path / "results.parquet").exists()


def test_an_execution_provider_this_onnxruntime_lacks_names_what_it_offers():
    import onnxruntime as ort

    cfg = compose(["backend=onnxruntime", "backend.provider=NoSuchExecutionProvider"])
    with pytest.raises(HostCannotRun) as caught:
        check_host(cfg)
    assert str(caught.value).startswith("backend.provider=NoSuchExecutionProvider: this host's")
    assert ", ".join(ort.get_available_providers()) in str(caught.value)


def test_a_service_deployed_elsewhere_is_not_checked_against_this_host():
    check_host(compose(["strategy=endpoint", "optimization=fp16"]))


@no_gpu
def test_the_command_refuses_in_one_line_with_exit_status_2(tmp_path):
    proc = subprocess.run(
        [
            sys.executable, "-m", "bench", "model=mlp", "backend=onnxruntime",
            "backend.provider=CUDAExecutionProvider", f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(
        "bench: this host cannot run the configuration: backend.provider=CUDAExecutionProvider: "
        "this host"
    )
    assert not (tmp_path / "run" / "results.parquet").exists()
