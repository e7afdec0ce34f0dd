"""Config names to implementations, imported only when chosen: a worker imports what its own
strategy, model and backend need, and nothing else (an ONNX Runtime worker never loads torch)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from bench.config import ConfigError


def resolve(table: Mapping[str, str], name: str, field: str) -> Any:
    """The object `table[name]` names as "package.module:attribute"; a ConfigError naming
    `field` and the accepted values when `name` is not in the table."""
    target = table.get(name)
    if target is None:
        raise ConfigError(f"{field}: accepted values are {', '.join(table)}; got {name!r}")
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
