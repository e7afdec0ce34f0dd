"""Deployment strategies, one module each, behind the `Runner` interface."""

from __future__ import annotations

from bench.registry import resolve
from runners.base import Request, Response, Runner, RunnerError, RunnerFacts

RUNNERS = {
    "direct": "runners.direct:DirectRunner",
    "http": "runners.http:HttpRunner",
    "grpc": "runners.grpc:GrpcRunner",
    "container": "runners.container:ContainerRunner",
    "edge": "runners.edge:EdgeRunner",
    "serverless": "runners.serverless:ServerlessRunner",
    "endpoint": "runners.endpoint:EndpointRunner",
}


def build_runner(cfg) -> Runner:
    """The runner for `cfg.strategy.name`; it builds its own predictor from the config."""
    return resolve(RUNNERS, cfg.strategy.name, "strategy.name")(cfg)


__all__ = ["Request", "Response", "Runner", "RunnerError", "RunnerFacts", "build_runner"]
