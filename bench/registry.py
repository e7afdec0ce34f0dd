"""One table of options: each config dataclass registers itself under its group with `option`,
and names its implementation as "package.module:attribute" in a class attribute, so a config
and its code pair up in one line and the implementation is imported only when chosen (a worker
imports what its own strategy, model and backend need: an ONNX Runtime worker never loads torch).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import is_dataclass
from typing import Any, TypeVar

from omegaconf import MissingMandatoryValue, OmegaConf

from bench.validation import ConfigError

GROUPS = ("model", "backend", "optimization", "strategy", "scenario", "catalog")
# The modules whose classes register themselves; scenarios are found by listing their package,
# so a new scenario is one module there and its preset.
_CONFIG_MODULES = (
    "bench.config.model",
    "bench.config.backend",
    "bench.config.optimization",
    "bench.config.strategy",
    "bench.config.catalog",
)
_SCENARIO_PACKAGE = "bench.load.scenarios"

_OPTIONS: dict[str, dict[str, type]] = {group: {} for group in GROUPS}
T = TypeVar("T", bound=type)


def option(group: str) -> Callable[[T], T]:
    """Class decorator: register a config dataclass as option `cls.name` of `group`."""

    def register(cls: T) -> T:
        _OPTIONS[group][cls.name] = cls
        return cls

    return register


def options() -> dict[str, dict[str, type]]:
    """Every group's options, name -> config dataclass, in the order they were defined."""
    for module in _CONFIG_MODULES:
        importlib.import_module(module)
    package = importlib.import_module(_SCENARIO_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{_SCENARIO_PACKAGE}.{info.name}")
    return _OPTIONS


def option_class(group: str, name: str) -> type:
    """The config dataclass of option `name`; a ConfigError naming the accepted ones."""
    table = options()[group]
    if name not in table:
        raise ConfigError(f"{group}.name: accepted values are {', '.join(table)}; got {name!r}")
    return table[name]


def as_dataclass(cls: type, node: Any) -> Any:
    """`node` (a DictConfig, composed or from a worker's plain YAML, or a dict) as an instance of
    `cls`, its types checked, so the class's methods and defaults apply."""
    if isinstance(node, cls):
        return node
    values = node if isinstance(node, dict) else OmegaConf.to_container(node, resolve=True)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), values))


def typed(group: str, node: Any) -> Any:
    """`node` as the config dataclass that its `name` registers in `group`; a required field
    left unset is a ConfigError naming it."""
    if is_dataclass(node):
        return node
    try:
        return as_dataclass(option_class(group, node["name"]), node)
    except MissingMandatoryValue as exc:
        raise ConfigError(
            f"{group}.{exc.full_key}: required by {group}={node['name']}, and not set; "
            f"give it on the command line ({group}.{exc.full_key}=...)"
        ) from None


def resolve(target: str) -> Any:
    """The object a "package.module:attribute" string names, imported now."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def implementation(group: str, node: Any, role: str) -> Any:
    """What option `node.name` of `group` names in its class attribute `role`, imported."""
    return resolve(getattr(option_class(group, node.name), role))
