"""The `edge` strategy: device profiles through the same isolation as `container`; a model
too big for the device is a recorded "does not fit", and the sweep goes on. And the image a
user builds for their registry, as generated for a plan."""

from __future__ import annotations

import json
import os
import zipfile

import pytest
import yaml
from omegaconf import OmegaConf

from bench.capacity.image import write_image
from bench.config import validate
from bench.run import run_benchmark
from bench.validation import ConfigError
from runners import build_runner
from runners.sandbox import Limits
from tests.conftest import compose
from tests.test_container import ISOLATIONS

TINY = [
    "strategy=edge",
    "scenario=single_stream",
    "scenario.warmup_s=0.2",
    "scenario.duration_s=0.6",
    "progress=false",
    "accuracy_samples=4",
]


def test_every_device_profile_composes():
    for device, cores, memory_mb in [("tiny", 1, 512), ("small", 2, 1024), ("rpi4", 4, 2048)]:
        cfg = compose(["strategy=edge", f"strategy/device={device}"])
        validate(cfg)
        assert (cfg.strategy.device.name, cfg.strategy.device.cores) == (device, cores)
        assert cfg.strategy.device.memory_mb == memory_mb
    assert compose(["strategy=edge"]).strategy.device.name == "tiny"


def test_a_device_runs_one_worker():
    with pytest.raises(ConfigError, match=r"strategy\.replicas"):
        validate(compose(["strategy=edge", "strategy.replicas=2"]))


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_model_too_big_for_the_device_does_not_fit_and_the_sweep_goes_on(
    isolation, tmp_path, cache_dir, monkeypatch
):
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    too_small = compose(
        [
            *TINY,
            f"strategy.isolation={isolation}",
            "model=minilm",
            "strategy.device.memory_mb=150",
            "strategy.start_timeout_s=40",
            f"cache_dir={cache_dir}",
        ]
    )
    failed = run_benchmark(too_small, tmp_path).iloc[0]
    assert failed["status"] == "failed" and not failed["valid"]
    assert "does not fit: out of memory at 150 MB" in failed["error"]
    assert list(here.iterdir()) == []  # nothing left where the harness runs (conmon's "oom")
    # The next configuration, on the same device, still runs and fits.
    fits = compose(
        [*TINY, f"strategy.isolation={isolation}", "model=mlp", f"cache_dir={cache_dir}"]
    )
    rows = run_benchmark(fits, tmp_path)
    row = rows[rows["model"] == "mlp"].iloc[0]
    assert len(rows) == 2 and row["status"] == "measured" and row["errors"] == 0
    assert row["cpu_limit"] == 1 and row["memory_limit_mb"] == 512
    assert row["limits_note"].startswith("device tiny:")
    assert row["predictor_threads"] == 1  # the device's threads, not backend.threads
    assert row["memory_peak_mb"] <= 512


def test_the_generated_image_serves_the_measured_config_where_the_manifests_probe(tmp_path):
    run = OmegaConf.to_container(
        compose(["model=mlp", "backend=onnxruntime"]), resolve=True, enum_to_str=True
    )
    config = {group: run[group] for group in ("model", "backend", "optimization", "strategy")}
    dockerfile = write_image(tmp_path / "image", config, threads=2).read_text()
    lines = dockerfile.splitlines()
    assert "FROM python:3.11-slim" in lines
    assert "RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in lines
    assert "RUN pip install -r /app/requirements.txt" in lines
    assert "EXPOSE 8000" in lines
    assert "/v2/health/ready" in dockerfile and "HEALTHCHECK" in dockerfile
    cmd = json.loads(next(line for line in lines if line.startswith("CMD "))[4:])
    assert cmd[:3] == ["python", "-m", "runners.worker"]
    assert cmd[cmd.index("--port") + 1] == "8000" and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    # The build context is whole: the config, the pins and this package as a wheel.
    served = yaml.safe_load((tmp_path / "image" / "serving.yaml").read_text())
    assert served["model"]["name"] == "mlp" and served["backend"]["threads"] == 2
    pins = (tmp_path / "image" / "requirements.txt").read_text().splitlines()
    assert "torch==2.13.0" in pins and all("==" in pin for pin in pins if "onnxruntime" in pin)
    # Only what serving imports: not the test tools, nor the harness's load driver and report.
    names = {pin.split("==")[0] for pin in pins}
    assert not names & {"pytest", "ruff", "pandas", "pyarrow", "hdrhistogram", "aiohttp", "jinja2"}
    (wheel,) = (tmp_path / "image").glob("bench-*-py3-none-any.whl")
    assert f"COPY {wheel.name} /app/{wheel.name}" in lines
    assert f"RUN pip install --no-deps /app/{wheel.name}" in lines
    with zipfile.ZipFile(wheel) as archive:
        packed = set(archive.namelist())
    assert {"runners/worker.py", "bench/conf/config.yaml", "bench/cli.py"} <= packed
    assert not [name for name in packed if "__pycache__" in name or name.endswith(".pyc")]


def test_a_device_with_more_cores_than_the_host_is_capped_at_the_host():
    runner = build_runner(compose(["model=mlp", "strategy=edge", "strategy/device=rpi4"]))
    host = len(os.sched_getaffinity(0))
    assert runner.limits == Limits(cores=min(4, host), memory_mb=2048)
    assert runner.facts.cpu_limit == min(4, host) and runner.facts.memory_limit_mb == 2048
    assert runner.cfg.backend.threads == 4  # the device's threads, whatever backend.threads says
