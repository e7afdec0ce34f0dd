"""Backends: turn a model bundle into a `Predictor` as the backend config says."""

from __future__ import annotations

import importlib
import json
from types import ModuleType

from omegaconf import OmegaConf

from bench.backends.base import BackendError, Predictor, PredictorInfo
from bench.backends.threads import settle_threads
from bench.config.backend import BackendConfig
from bench.config.optimization import OptimizationConfig
from bench.models.base import ModelBundle
from bench.registry import implementation, option_class
from bench.validation import ConfigError


def import_backend(name: str) -> ModuleType:
    """The module of backend `name`, imported with its framework (torch, onnxruntime, no
    other): a worker calls it first, so it can time the imports apart from building the model."""
    module, _, _ = option_class("backend", name).predictor.partition(":")
    return importlib.import_module(module)


def build_predictor(
    bundle: ModelBundle, backend: BackendConfig, optimization: OptimizationConfig, cache_dir: str
) -> Predictor:
    """Import only what the chosen backend needs: an ONNX Runtime predictor never loads torch
    when its (optimized) export is already cached. Its intra-op threads are pinned by
    `backend.threads` or chosen by a short probe (`bench.backends.threads`)."""
    if bundle.load_module is None and not option_class("backend", backend.name).runs_onnx_files:
        raise ConfigError(
            f"backend={backend.name}: model={bundle.name} is an ONNX file and has no torch "
            "module to run; serve it with backend=onnxruntime"
        )
    predictor = implementation("backend", backend, "predictor")(
        bundle, backend, optimization, cache_dir
    )
    settings = OmegaConf.to_container(
        OmegaConf.create({"backend": backend, "optimization": optimization}), enum_to_str=True
    )
    settings["backend"].pop("threads", None)
    identity = json.dumps([bundle.name, bundle.fingerprint(), settings], sort_keys=True)
    settle_threads(predictor, backend.threads, backend.max_threads, identity, cache_dir)
    return predictor


__all__ = ["BackendError", "Predictor", "PredictorInfo", "build_predictor", "import_backend"]
