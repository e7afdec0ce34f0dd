"""Models: builders returning a `ModelBundle` from the model config."""

from __future__ import annotations

from bench.config import ConfigError, ModelConfig
from bench.models.base import ModelBundle


def build_model(cfg: ModelConfig) -> ModelBundle:
    """The bundle for `cfg.name`; an unknown name names the accepted ones."""
    if cfg.name == "minilm":
        from bench.models import minilm

        return minilm.build(cfg)
    if cfg.name == "mlp":
        from bench.models import mlp

        return mlp.build(cfg)
    raise ConfigError(f"model.name: accepted values are minilm, mlp; got {cfg.name!r}")


__all__ = ["ModelBundle", "build_model"]
