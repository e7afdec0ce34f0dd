"""`python -m bench` as a user runs it: real processes, real files, real report."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench import results
from tests.conftest import checkout_env

TINY = ["scenario.warmup_s=0.3", "scenario.duration_s=1", "accuracy_samples=4"]


def bench(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m bench ARGS` run from `cwd` (outside the checkout, as a user would)."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_a_run_writes_results_and_a_report_and_prints_them(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = bench(
        "model=mlp", *TINY, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    report = re.search(r"^report:\s+(\S+)$", proc.stdout, re.M)
    assert report and tmp_path / report.group(1) == run_dir / "report.html"
    assert (run_dir / "report.html").stat().st_size > 10_000
    for label in ("concurrency 1", "concurrency 2", "concurrency 4"):
        assert label in proc.stdout
    rows = results.load(run_dir)
    assert list(rows["label"]) == ["concurrency 1", "concurrency 2", "concurrency 4"]
    # Progress went to the terminal as bars, not as a wall of log lines.
    assert "requests" in proc.stderr


@pytest.mark.slow
def test_the_default_model_runs_end_to_end_on_both_backends(tmp_path, cache_dir):
    """The built-in default (the real all-MiniLM-L6-v2), as a sweep over both backends."""
    sweep = tmp_path / "sweep"
    proc = bench(
        "-m",
        "backend=torch,onnxruntime",
        "scenario.levels=[1,2]",
        *TINY,
        f"cache_dir={cache_dir}",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert f"sweep report: {sweep / 'report.html'}" in proc.stdout
    rows = results.load(sweep)
    assert sorted(rows["backend"].unique()) == ["onnxruntime", "torch"]
    assert (rows["model"] == "minilm").all() and (rows["status"] == "measured").all()
    assert (rows["accuracy_cosine_min"] > 0.9999).all()
    html = (sweep / "report.html").read_text()
    assert "onnxruntime" in html and "torch" in html


def test_a_server_point_from_the_command_line(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    bench(
        "model=mlp",
        "backend=onnxruntime",
        "scenario=server",
        "scenario.target_qps=50",
        *TINY,
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
        "report=false",
        cwd=tmp_path,
    )
    row = pd.read_parquet(run_dir / "results.parquet").iloc[0]
    assert row["target_qps"] == 50.0 and row["scenario"] == "server"
    assert row["predictor_provider"] == "CPUExecutionProvider"
    assert not (run_dir / "report.html").exists()
