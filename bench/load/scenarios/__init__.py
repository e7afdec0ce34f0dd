"""Scenarios, one module each; `bench.registry.options()` finds them by listing this package."""

from __future__ import annotations

from bench.load.points import LoadPoint
from bench.load.scenarios.base import ScenarioConfig
from bench.load.shapes import Shape
from bench.registry import option_class


def scenario_of(name: str) -> type[ScenarioConfig]:
    """The config class of scenario `name`: its points' shape, label and how they are judged."""
    return option_class("scenario", name)


def shape_of(point: LoadPoint) -> Shape:
    """How the driver issues `point`: the shape its own scenario gives it."""
    return scenario_of(point.scenario).shape(point)


__all__ = ["ScenarioConfig", "scenario_of", "shape_of"]
