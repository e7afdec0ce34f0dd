"""Deployment strategies, one module each, behind the `Runner` interface."""

from __future__ import annotations

from bench.config import ConfigError
from runners.base import Request, Response, Runner, RunnerFacts


def build_runner(cfg) -> Runner:
    """The runner for `cfg.strategy.name`; it builds its own predictor from the config."""
    if cfg.strategy.name == "direct":
        from runners.direct import DirectRunner

        return DirectRunner(cfg)
    raise ConfigError(f"strategy.name: accepted values are direct; got {cfg.strategy.name!r}")


__all__ = ["Request", "Response", "Runner", "RunnerFacts", "build_runner"]
