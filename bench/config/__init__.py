"""Typed configuration: one dataclass per option, registered under its group (`bench.registry`)
and stored in Hydra's ConfigStore as `schema/<group>/<name>`.

The YAML presets in `conf/<group>/<name>.yaml` extend these schemas (Hydra's "extending configs"
pattern), so a misspelled field fails at composition time with a message naming the field and
the schema it is not in, a misspelled option names the accepted ones, and a closed set of values
(an `Enum` field) names the accepted values. Validation is pure: each option's `validate()`
raises `ConfigError` naming the field and what is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from bench.config.backend import BackendConfig
from bench.config.catalog import CatalogConfig
from bench.config.model import ModelConfig
from bench.config.optimization import OptimizationConfig
from bench.config.plan import PlanConfig
from bench.config.strategy import StrategyConfig
from bench.load.scenarios.base import ScenarioConfig
from bench.registry import as_dataclass, option_class, options, typed
from bench.validation import ConfigError, at_least, positive, require


@dataclass
class BenchConfig:
    model: ModelConfig = MISSING
    backend: BackendConfig = MISSING
    optimization: OptimizationConfig = MISSING
    strategy: StrategyConfig = MISSING
    scenario: ScenarioConfig = MISSING
    catalog: CatalogConfig = MISSING
    plan: PlanConfig = field(default_factory=PlanConfig)
    # Exported ONNX files and other derived artefacts, keyed by content hash.
    cache_dir: str = "~/.cache/bench"
    # Samples from the model's evaluation inputs compared with the fp32 torch reference.
    accuracy_samples: int = 16
    # Lowest accepted accuracy against the fp32 reference: worst-case cosine similarity for
    # embedding models, top-1 agreement for classifiers. A point below it is INVALID, so no
    # recommendation picks it. null: no floor.
    accuracy_floor: float | None = None
    # The measuring host's calibration micro-benchmark, run before the first point (cached per
    # host, so once) and stored in every row for the planner.
    calibration_s: float = 30.0
    # How fast one call of the model runs while every core of the host runs one, against one
    # alone; the planner slows workers beside each other by it (bench.backends.core_sharing).
    # null: measured before the first point by copies of the model in processes of their own
    # (about 5 s, once per host and configuration: remembered under cache_dir). A number pins
    # it (1: workers beside each other do not slow each other).
    core_sharing: float | None = None
    # Sample CPU, memory and GPU this often while a point runs.
    sample_interval_s: float = 0.2
    progress: bool = True
    report: bool = True
    # Free text carried into every row, e.g. the name of the machine or the experiment.
    tag: str = ""
    # Where the points ran, as a label every row carries (`tier`) and tier comparisons group
    # by. Empty: derived from the host and the limits (bench.results.tier), e.g. `epyc-2c`,
    # `epyc-2c/cpus=1`, `epyc-2c/edge=small`. On a Ray cluster (hydra/launcher=ray) it also
    # picks the nodes that measure: those offering the resource `tier:<tier>`.
    tier: str = ""
    # Which machine measured, as every row names it (`node`). Empty: this host's name. The Ray
    # launcher (hydra/launcher=ray) sets the Ray node that ran the configuration.
    node: str = ""


def register_configs() -> None:
    """Store every option's schema under `schema/<group>/<name>`; YAML presets extend them."""
    cs = ConfigStore.instance()
    cs.store(name="bench_schema", node=BenchConfig)
    for group, table in options().items():
        for name, node in table.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


def _check_cache_workload(cfg: Any) -> None:
    """A response cache measured on the default workload (64 payloads cycled) would answer
    nearly every request: the hit ratio has to come from a workload the user set."""
    if "strategy" not in cfg or "scenario" not in cfg:
        return
    cache = getattr(typed("strategy", cfg.strategy), "cache", None)
    if cache is not None and cache.enabled:
        require(
            typed("scenario", cfg.scenario).repeats.any,
            "strategy.cache",
            "a response cache needs a workload whose repeats you set, or its hit ratio is the "
            "default workload's 64 payloads cycled: set scenario.repeat_ratio (e.g. 0.5) or "
            "scenario.distinct (with scenario.zipf_s)",
        )


def _check_compiled_generation(cfg: Any) -> None:
    """A generative model that the harness serves compiled needs dynamic shapes."""
    backend = cfg.get("backend")
    if backend is None or backend.name != "torch_compile" or backend.dynamic:
        return
    require(
        not (generative(cfg) and typed("strategy", cfg.strategy).serves_here),
        "backend.dynamic",
        "must be true for a generative model: its key-value cache grows by a column at every "
        "decode step and rows join and leave the batch, so static shapes would recompile at "
        "every step (and run eagerly once torch's recompile limit is reached)",
    )


def generative(cfg: Any) -> bool:
    """Whether the run's requests generate tokens, streamed: the model says it generates
    (its config class's `generative`), or the strategy drives a generative server the user
    runs (`strategy=endpoint strategy.protocol=openai`)."""
    if cfg.strategy.name == "endpoint" and str(cfg.strategy.protocol) == "openai":
        return True
    return bool(getattr(option_class("model", cfg.model.name), "generative", False))


def validate(cfg: Any) -> None:
    """Check what types alone cannot, option by option; a ConfigError names the field."""
    for group in options():
        if group in cfg:
            typed(group, cfg[group]).validate(group)
    if cfg.get("plan") is not None:
        as_dataclass(PlanConfig, cfg.plan).validate("plan")
    _check_cache_workload(cfg)
    _check_compiled_generation(cfg)
    require(
        cfg.accuracy_floor is None or -1.0 <= cfg.accuracy_floor <= 1.0,
        "accuracy_floor",
        f"must be between -1 and 1 (cosine or top-1 agreement) or null, got {cfg.accuracy_floor}",
    )
    at_least(cfg.accuracy_samples, 0, "accuracy_samples")
    at_least(cfg.calibration_s, 0, "calibration_s")
    require(
        cfg.core_sharing is None or 0 < cfg.core_sharing <= 1,
        "core_sharing",
        f"must be above 0 and at most 1 (a speed relative to alone) or null, got "
        f"{cfg.core_sharing}",
    )
    positive(cfg.sample_interval_s, "sample_interval_s")


__all__ = ["BenchConfig", "ConfigError", "generative", "register_configs", "validate"]
