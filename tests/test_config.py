"""Every shipped config composes; bad input fails at once, naming the field and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from bench.config import validate
from bench.registry import options
from bench.validation import ConfigError
from tests.conftest import CONF_DIR, checkout_env, compose

SCHEMAS = options()

ROOT = Path(__file__).resolve().parents[1]


def shipped(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


@pytest.mark.parametrize("group", sorted(SCHEMAS))
def test_every_shipped_option_composes_and_validates(group):
    assert shipped(group), f"conf/{group} has no presets"
    for option in shipped(group):
        cfg = compose([f"{group}={option}"])
        assert cfg[group].name == option
        assert OmegaConf.get_type(cfg[group]) is SCHEMAS[group][option]
        required = [k for k in cfg[group] if OmegaConf.is_missing(cfg[group], k)]
        if required:
            # A user's own model needs its file or import path: validation says which field.
            with pytest.raises(ConfigError, match=rf"{group}\.{required[0]}: required"):
                validate(cfg)
        else:
            validate(cfg)


def test_every_schema_has_a_preset():
    for group, table in SCHEMAS.items():
        assert sorted(table) == shipped(group)


def test_overrides_reach_the_typed_fields():
    cfg = compose(["backend=onnxruntime", "scenario=server", "scenario.target_qps=20"])
    assert cfg.backend.provider == "CPUExecutionProvider"
    assert cfg.scenario.target_qps == 20.0


def test_a_misspelled_field_names_the_field():
    with pytest.raises(ConfigCompositionException) as err:
        compose(["scenario=server", "scenario.target_qsp=20"])
    assert "target_qsp" in str(err.value) + str(err.value.__cause__)


def test_a_wrong_type_is_refused():
    with pytest.raises(ConfigCompositionException):
        compose(["scenario=server", "scenario.target_qps=fast"])


@pytest.mark.parametrize(
    "override, accepted",
    [
        ("scenario.slo_percentile=p42", "[p50, p90, p95, p99, p999]"),
        ("plan.percentile=p100", "[p50, p90, p95, p99, p999]"),
        ("backend.device=tpu", "[cpu, cuda]"),
        ("backend=onnxruntime backend.graph_optimization=ful", "[disable, basic, extended, all]"),
        ("optimization=int8_static optimization.calibration_method=mean", "[minmax, entropy,"),
        ("strategy=http strategy.load_balancer=haproxy", "[none, nginx]"),
        ("strategy=http strategy.payload=xml", "[binary, json]"),
        ("strategy=container strategy.isolation=docker", "[auto, podman, cgroup, affinity]"),
        ("strategy=serverless strategy.overflow=drop", "[queue, reject]"),
        ("strategy=endpoint strategy.protocol=grpc", "[v2, json, openai]"),
        ("catalog.serverless_pricing.billed_time=always", "[busy, lifetime]"),
    ],
)
def test_a_closed_set_refuses_a_value_at_composition_naming_the_accepted_ones(override, accepted):
    with pytest.raises(ConfigCompositionException) as err:
        compose(override.split())
    message = str(err.value) + str(err.value.__cause__)
    assert override.split("=")[-1] in message and accepted in message


def test_a_misspelled_option_lists_the_accepted_ones():
    with pytest.raises(MissingConfigException) as err:
        compose(["backend=onnxrt"])
    message = str(err.value)
    assert "backend/onnxrt" in message and "onnxruntime" in message and "torch" in message


@pytest.mark.parametrize(
    "override, field",
    [
        ("scenario.batch_size=0", "scenario.batch_size"),
        ("scenario.duration_s=0", "scenario.duration_s"),
        ("scenario.levels=[]", "scenario.levels"),
        ("backend.threads=0", "backend.threads"),
        ("strategy.workers=0", "strategy.workers"),
        ("catalog.serverless_pricing.per_gb_second=-1", "catalog.serverless_pricing.per_gb_second"),
        ("scenario=rate_sweep scenario.rates=[10,0]", "scenario.rates"),
    ],
)
def test_validation_names_the_field(override, field):
    cfg = compose(override.split())
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate(cfg)


@pytest.mark.parametrize(
    "overrides, said",
    [
        (["backend=onnxrt"], ["Could not find 'backend/onnxrt'", "onnxruntime"]),
        (
            ["backend=onnxruntime", "backend.graph_optimization=ful"],
            ["backend.graph_optimization", "expected one of [disable, basic, extended, all]"],
        ),
    ],
)
def test_the_command_line_rejects_what_does_not_compose_with_the_choices(tmp_path, overrides, said):
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *overrides],
        cwd=tmp_path,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    for text in said:
        assert text in proc.stderr


def test_the_command_line_names_an_invalid_value_without_a_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "model=mlp",
            "scenario.batch_size=0",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=tmp_path,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "configuration error: scenario.batch_size: must be >= 1, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr
