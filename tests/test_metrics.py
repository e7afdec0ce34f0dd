"""Samplers read real processes; with no GPU the GPU columns say so and nothing fails."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from bench.metrics import GpuSampler, ResourceSampler, gpu_names, host_fingerprint
from bench.metrics.host import ISA_FLAGS, git_revision

BURN = "import time\nt = time.time()\nwhile time.time() - t < {s}: pass\n"


def test_resource_sampler_sees_a_busy_child_and_its_memory():
    sampler = ResourceSampler(interval_s=0.05)
    sampler.start()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", BURN.format(s=1.0)], check=True)
    t1 = time.perf_counter()
    sampler.stop()
    row = sampler.summary(t0, t1)
    # One child burning one core for most of the window (the machine may be busy too).
    assert 0.3 < row["cpu_cores_used"] < 1.6
    # The child's CPU is not this process's own.
    assert 0 <= row["harness_cpu_cores_used"] < row["cpu_cores_used"]
    assert row["cpu_util_pct"] == pytest.approx(100 * row["cpu_cores_used"] / host_cores())
    assert 0 <= row["system_cpu_util_pct"] <= 100
    assert row["rss_peak_mb"] > 10


def test_resource_sampler_sleeps_between_samples():
    sampler = ResourceSampler(interval_s=0.1)
    sampler.start()
    cpu0 = time.process_time()
    time.sleep(1.0)
    sampler.stop()
    # About ten samples a second, and the sampling itself costs little CPU.
    assert 5 <= len(sampler.samples) <= 15
    assert time.process_time() - cpu0 < 0.3


def host_cores() -> int:
    return host_fingerprint()["host_cores"]


@pytest.mark.skipif(bool(gpu_names()), reason="a GPU is present")
def test_gpu_sampler_without_a_gpu_reports_not_available():
    sampler = GpuSampler(0.05)
    sampler.start()
    sampler.stop()
    row = sampler.summary(0.0, 1.0)
    assert row["gpu_available"] is False
    assert all(np.isnan(row[c]) for c in ("gpu_util_pct", "gpu_mem_peak_mb", "gpu_power_w"))
    assert host_fingerprint()["host_gpu"] == "none"


@pytest.mark.skipif(not gpu_names(), reason="no GPU on this machine")
def test_gpu_sampler_reads_a_real_gpu():
    sampler = GpuSampler(0.05)
    sampler.start()
    time.sleep(0.3)
    sampler.stop()
    row = sampler.summary(0.0, time.perf_counter())
    assert row["gpu_available"] is True
    assert row["gpu_mem_peak_mb"] > 0


def test_host_fingerprint_describes_this_machine():
    host = host_fingerprint()
    assert host["host_cores"] >= 1 and host["host_mem_gb"] > 0
    assert host["host_cpu_model"]
    assert set(filter(None, host["host_isa"].split(","))) <= set(ISA_FLAGS)
    versions = json.loads(host["host_versions"])
    assert "torch" in versions and "python" in versions


def test_git_revision_is_the_checkout_of_this_code_only(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "tracked.txt").write_text("a\n")
    git("add", "tracked.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert git_revision(tmp_path) == head
    (tmp_path / "tracked.txt").write_text("b\n")
    assert git_revision(tmp_path) == f"{head}+dirty"
    # Code installed into a folder inside some checkout (a venv's site-packages) is not that
    # checkout's code.
    (tmp_path / "site-packages").mkdir()
    assert git_revision(tmp_path / "site-packages") == ""
    assert "bench" in json.loads(host_fingerprint()["host_versions"])
