"""Models: builders returning a `ModelBundle` from the model config.

Only the chosen builder's module is imported (each model config names its own, see
`bench.config.model`): a worker serving an ONNX file with ONNX Runtime never imports torch.
"""

from __future__ import annotations

from bench.config.model import ModelConfig
from bench.models.base import ModelBundle
from bench.registry import implementation


def build_model(cfg: ModelConfig) -> ModelBundle:
    """The bundle for `cfg.name`; an unknown name names the accepted ones."""
    return implementation("model", cfg, "builder")(cfg)


__all__ = ["ModelBundle", "build_model"]
