"""Models: builders returning a `ModelBundle` from the model config.

Only the chosen builder's module is imported: a worker serving an ONNX file with ONNX Runtime
never imports torch.
"""

from __future__ import annotations

from bench.config import ModelConfig
from bench.models.base import ModelBundle
from bench.registry import resolve

BUILDERS = {
    "minilm": "bench.models.minilm:build",
    "mlp": "bench.models.mlp:build",
    "efficientnet_lite0": "bench.models.efficientnet:build",
    "onnx_file": "bench.models.user:build_onnx_file",
    "torch_file": "bench.models.user:build_torch_file",
    "python": "bench.models.user:build_python",
}
MODEL_NAMES = tuple(BUILDERS)


def build_model(cfg: ModelConfig) -> ModelBundle:
    """The bundle for `cfg.name`; an unknown name names the accepted ones."""
    return resolve(BUILDERS, cfg.name, "model.name")(cfg)


__all__ = ["MODEL_NAMES", "ModelBundle", "build_model"]
