"""The experiment presets (`+experiment=NAME`): each composes into a valid config, every job of a
sweep preset too, and `bench --help` lists them. The tiers sweep runs end to end on a tiny
budget in tests/test_tiers.py."""

from __future__ import annotations

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_module
from omegaconf import OmegaConf

from bench.cli import config_dir, experiments
from bench.config import register_configs, validate

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
