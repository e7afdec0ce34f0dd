"""Backends: turn a model bundle into a `Predictor` as the backend config says."""

from __future__ import annotations

from bench.backends.base import BackendError, Predictor, PredictorInfo
from bench.config import BackendConfig, ConfigError, OptimizationConfig
from bench.models.base import ModelBundle


def build_predictor(
    bundle: ModelBundle, backend: BackendConfig, optimization: OptimizationConfig, cache_dir: str
) -> Predictor:
    """Import only what the chosen backend needs: an ONNX Runtime predictor never loads torch
    when its (optimized) export is already cached."""
    if bundle.load_module is None and backend.name != "onnxruntime":
        raise ConfigError(
            f"backend={backend.name}: model={bundle.name} is an ONNX file and has no torch "
            "module to run; serve it with backend=onnxruntime"
        )
    if backend.name == "torch":
        from bench.backends.torch_eager import TorchPredictor

        return TorchPredictor(bundle, backend, optimization)
    if backend.name == "torch_compile":
        from bench.backends.torch_compile import TorchCompilePredictor

        return TorchCompilePredictor(bundle, backend, optimization, cache_dir)
    if backend.name == "onnxruntime":
        from bench.backends.onnxruntime import OnnxRuntimePredictor

        return OnnxRuntimePredictor(bundle, backend, cache_dir, optimization)
    raise ConfigError(
        f"backend.name: accepted values are torch, torch_compile, onnxruntime; got {backend.name!r}"
    )


__all__ = ["BackendError", "Predictor", "PredictorInfo", "build_predictor"]
