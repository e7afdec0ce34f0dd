"""Triton's own clients, run from their virtual environment (.venv-triton, made from
tests/triton-requirements.txt; .ci/run makes it): tritonclient, through tests/triton_oracle.py in
a process of its own (its protobuf modules define the same `inference.*` messages as ours, which
one process cannot hold twice), and perf_analyzer."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-triton"
PYTHON = VENV / "bin" / "python"
PERF_ANALYZER = VENV / "bin" / "perf_analyzer"
SETUP = (
    "python3 -m venv .venv-triton && .venv-triton/bin/pip install -r tests/triton-requirements.txt"
    " && apt-get install libb64-0d"
)


def _libraries() -> list[Path]:
    return sorted(VENV.glob("lib/python3*/site-packages/nvidia/cuda_runtime/lib"))


def perf_analyzer_env() -> dict[str, str]:
    """Our environment with libcudart.so.12 (nvidia-cuda-runtime-cu12) on LD_LIBRARY_PATH."""
    path = [*map(str, _libraries()), os.environ.get("LD_LIBRARY_PATH", "")]
    return {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(filter(None, path))}


def _perf_analyzer_runs() -> bool:
    if not PERF_ANALYZER.exists():
        return False
    probe = subprocess.run(
        [str(PERF_ANALYZER), "--version"], env=perf_analyzer_env(), capture_output=True
    )
    return probe.returncode == 0


needs_tritonclient = pytest.mark.skipif(
    not PYTHON.exists(), reason=f"Triton's clients are not installed ({SETUP})"
)
needs_perf_analyzer = pytest.mark.skipif(
    not _perf_analyzer_runs(), reason=f"perf_analyzer is not installed or cannot run ({SETUP})"
)


def oracle(*args: str) -> dict:
    """Run tests/triton_oracle.py with `args` under tritonclient; its JSON report."""
    script = Path(__file__).with_name("triton_oracle.py")
    done = subprocess.run(
        [str(PYTHON), str(script), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)
