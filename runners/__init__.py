"""Deployment strategies, one module each, behind the `Runner` interface."""

from __future__ import annotations

from bench.config import ConfigError
from runners.base import Request, Response, Runner, RunnerError, RunnerFacts


def build_runner(cfg) -> Runner:
    """The runner for `cfg.strategy.name`; it builds its own predictor from the config."""
    if cfg.strategy.name == "direct":
        from runners.direct import DirectRunner

        return DirectRunner(cfg)
    if cfg.strategy.name == "http":
        from runners.http import HttpRunner

        return HttpRunner(cfg)
    if cfg.strategy.name == "grpc":
        from runners.grpc import GrpcRunner

        return GrpcRunner(cfg)
    raise ConfigError(
        f"strategy.name: accepted values are direct, http, grpc; got {cfg.strategy.name!r}"
    )


__all__ = ["Request", "Response", "Runner", "RunnerError", "RunnerFacts", "build_runner"]
