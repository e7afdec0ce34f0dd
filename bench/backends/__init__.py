"""Backends: turn a model bundle into a `Predictor` as the backend config says."""

from __future__ import annotations

import importlib
from types import ModuleType

from bench.backends.base import BackendError, Predictor, PredictorInfo
from bench.config import BackendConfig, ConfigError, OptimizationConfig
from bench.models.base import ModelBundle

# Each backend's module; importing it imports its framework (torch, onnxruntime) and no other.
_MODULES = {
    "torch": "bench.backends.torch_eager",
    "torch_compile": "bench.backends.torch_compile",
    "onnxruntime": "bench.backends.onnxruntime",
}


def import_backend(name: str) -> ModuleType:
    """The module of backend `name`, imported with its framework: a worker calls it first, so
    it can time the imports apart from building the model."""
    module = _MODULES.get(name)
    if module is None:
        raise ConfigError(f"backend.name: accepted values are {', '.join(_MODULES)}; got {name!r}")
    return importlib.import_module(module)


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
    module = import_backend(backend.name)
    if backend.name == "torch":
        return module.TorchPredictor(bundle, backend, optimization, cache_dir)
    if backend.name == "torch_compile":
        return module.TorchCompilePredictor(bundle, backend, optimization, cache_dir)
    return module.OnnxRuntimePredictor(bundle, backend, cache_dir, optimization)


__all__ = ["BackendError", "Predictor", "PredictorInfo", "build_predictor", "import_backend"]
