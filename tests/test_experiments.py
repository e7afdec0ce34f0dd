"""The experiment presets (`+experiment=NAME`): each composes into a valid config, `bench --help`
lists them, and the tiers sweep runs end to end on a tiny budget."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_module
from omegaconf import OmegaConf

from bench.cli import config_dir, experiments
from bench.config import register_configs, validate
from bench.results import load
from tests.conftest import LENIENT, checkout_env

PRESETS = sorted(path.stem for path in (config_dir() / "experiment").glob("*.yaml"))


def _composed(overrides: list[str]):
    register_configs()
    with initialize_config_module("bench.conf", version_base="1.3"):
        return hydra_compose("config", overrides=overrides, return_hydra_config=True)


def test_the_presets_the_readme_promises_exist():
    assert set(PRESETS) >= {"quick", "full", "tiers", "serverless_break_even", "edge_fit"}
    assert set(experiments()) == set(PRESETS) and all(experiments().values())


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_composes_into_a_valid_config(name):
    cfg = _composed([f"+experiment={name}"])
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    # A sweep preset: every job of its sweep is a valid config too.
    jobs = [[]]
    for key, values in params.items():
        jobs = [[*job, f"{key}={value}"] for job in jobs for value in str(values).split(",")]
    for job in jobs:
        job_cfg = _composed([f"+experiment={name}", *job])
        validate(job_cfg)
        assert job_cfg.model.name and job_cfg.scenario.name


def test_the_tiers_sweep_measures_each_tier_and_predicts_each_from_the_others(tmp_path, cache_dir):
    sweep = tmp_path / "tiers"
    tiny = ["model=mlp", "scenario.duration_s=1", "scenario.warmup_s=0.2"]
    tiny += ["scenario.max_points=1", "accuracy_samples=4", "progress=false", *LENIENT]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "+experiment=tiers", *tiny]
        + [f"cache_dir={cache_dir}", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    tiers = set(load(sweep)["tier"])
    assert len(tiers) == 3 and {t.split("/", 1)[-1] for t in tiers} >= {"cpus=1", "edge=small"}
    cross = (sweep / "plan" / "cross_tier.csv").read_text()
    assert cross.startswith("model,configuration,from_tier,to_tier,predicted_qps")
    assert (sweep / "report.html").exists()
