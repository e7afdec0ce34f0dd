"""Deployment strategies, one module each, behind the load driver's `Runner` interface
(`bench.load.sut`); each strategy's config (`bench.config.strategy`) names its runner class."""

from __future__ import annotations

from bench.load.sut import Request, Response, Runner, RunnerError, RunnerFacts
from bench.registry import implementation


def build_runner(cfg) -> Runner:
    """The runner `cfg.strategy` names; it builds its own predictor from the config."""
    return implementation("strategy", cfg.strategy, "runner")(cfg)


__all__ = ["Request", "Response", "Runner", "RunnerError", "RunnerFacts", "build_runner"]
