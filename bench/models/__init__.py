"""Models: builders returning a `ModelBundle` from the model config.

Each branch imports only its own builder: a worker serving an ONNX file with ONNX Runtime never
imports torch.
"""

from __future__ import annotations

from bench.config import ConfigError, ModelConfig
from bench.models.base import ModelBundle

MODEL_NAMES = ("minilm", "mlp", "efficientnet_lite0", "onnx_file", "torch_file", "python")


def build_model(cfg: ModelConfig) -> ModelBundle:
    """The bundle for `cfg.name`; an unknown name names the accepted ones."""
    if cfg.name == "minilm":
        from bench.models import minilm

        return minilm.build(cfg)
    if cfg.name == "mlp":
        from bench.models import mlp

        return mlp.build(cfg)
    if cfg.name == "efficientnet_lite0":
        from bench.models import efficientnet

        return efficientnet.build(cfg)
    if cfg.name == "onnx_file":
        from bench.models import user

        return user.build_onnx_file(cfg)
    if cfg.name == "torch_file":
        from bench.models import user

        return user.build_torch_file(cfg)
    if cfg.name == "python":
        from bench.models import user

        return user.build_python(cfg)
    raise ConfigError(f"model.name: accepted values are {', '.join(MODEL_NAMES)}; got {cfg.name!r}")


__all__ = ["MODEL_NAMES", "ModelBundle", "build_model"]
