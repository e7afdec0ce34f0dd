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
    if cfg.strategy.name == "serverless":
        from runners.serverless import ServerlessRunner

        return ServerlessRunner(cfg)
    if cfg.strategy.name == "endpoint":
        from runners.endpoint import EndpointRunner

        return EndpointRunner(cfg)
    if cfg.strategy.name == "container":
        from runners.container import ContainerRunner

        return ContainerRunner(cfg)
    if cfg.strategy.name == "edge":
        from runners.edge import EdgeRunner

        return EdgeRunner(cfg)
    raise ConfigError(
        f"strategy.name: accepted values are direct, http, grpc, container, edge, serverless, "
        f"endpoint; got {cfg.strategy.name!r}"
    )


__all__ = ["Request", "Response", "Runner", "RunnerError", "RunnerFacts", "build_runner"]
