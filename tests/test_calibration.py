"""The calibration micro-benchmark on this host, and its per-host cache."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from bench.metrics import calibration
from bench.metrics.calibration import REQUIRED, calibrate, host_calibration


def test_short_calibration_measures_every_figure():
    threads = torch.get_num_threads()
    result = calibrate(budget_s=2.0)
    for key in REQUIRED:
        assert key in result
        if key != "calib_method":
            assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["calib_seconds"] < 6.0
    assert "torch" in result["calib_method"] and "ONNX Runtime" in result["calib_method"]
    # The reported rate per precision is the best library's.
    assert result["calib_fp32_gflops_per_thread"] == max(
        result["calib_fp32_gflops_per_thread_torch"],
        result["calib_fp32_gflops_per_thread_onnxruntime"],
    )
    assert torch.get_num_threads() == threads  # pinned to one thread, then restored


def test_host_calibration_runs_once_per_host(tmp_path, monkeypatch):
    calls = []

    def fake_calibrate(budget_s: float = 30.0) -> dict:
        calls.append(budget_s)
        return {key: 1.0 + len(calls) for key in REQUIRED} | {"calib_method": "fake"}

    monkeypatch.setattr(calibration, "calibrate", fake_calibrate)
    first = host_calibration(str(tmp_path), budget_s=0.5)
    (cached,) = Path(tmp_path, "calibration").glob("*.json")
    assert cached.stem == first["calib_host_key"]
    second = host_calibration(str(tmp_path), budget_s=0.5)
    assert len(calls) == 1 and second == first
    cached.unlink()
    third = host_calibration(str(tmp_path), budget_s=0.5)
    assert len(calls) == 2 and cached.exists()
    assert third["calib_fp32_gflops_per_thread"] == 3.0


def test_a_damaged_cache_is_measured_again(tmp_path, monkeypatch):
    calls = []

    def fake_calibrate(budget_s: float = 30.0) -> dict:
        calls.append(budget_s)
        return {key: 2.0 for key in REQUIRED} | {"calib_method": "fake"}

    monkeypatch.setattr(calibration, "calibrate", fake_calibrate)
    key = host_calibration(str(tmp_path))["calib_host_key"]
    Path(tmp_path, "calibration", f"{key}.json").write_text("{not json")
    assert host_calibration(str(tmp_path))["calib_fp32_gflops_per_thread"] == 2.0
    assert len(calls) == 2
