"""ONNX Runtime, with the execution provider chosen by config and checked, never assumed."""

from __future__ import annotations

import zlib

import numpy as np
import onnxruntime as ort

from bench.backends.artifact import onnx_artifact
from bench.backends.base import BackendError, Predictor, PredictorInfo, remembered_sizes
from bench.backends.ort_optimize import optimized_onnx
from bench.config.backend import OnnxRuntimeBackendConfig
from bench.config.optimization import NoOptimizationConfig, OptimizationConfig
from bench.models.base import ModelBundle
from bench.registry import option_class
from bench.validation import ConfigError

_GRAPH_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class OnnxRuntimePredictor(Predictor):
    def __init__(
        self,
        bundle: ModelBundle,
        cfg: OnnxRuntimeBackendConfig,
        opt: OptimizationConfig | None = None,
        cache_dir: str = "~/.cache/bench",
    ) -> None:
        super().__init__(bundle)
        opt = opt or NoOptimizationConfig()
        if (
            option_class("optimization", opt.name).gpu_only
            and cfg.provider == "CPUExecutionProvider"
        ):
            raise ConfigError(
                f"optimization={opt.name}: half precision is for GPUs "
                "(backend.provider=CUDAExecutionProvider); on CPU use int8_dynamic or int8_static"
            )
        path, precision, facts = optimized_onnx(bundle, opt, cache_dir, cfg.opset)
        # Read just before the session loads the same file.
        artifact = onnx_artifact(bundle, path)
        options = ort.SessionOptions()
        options.graph_optimization_level = _GRAPH_LEVELS[str(cfg.graph_optimization)]
        if cfg.threads is not None:
            options.intra_op_num_threads = cfg.threads
        # onnxruntime-gpu lists CUDA and TensorRT even on a machine with no GPU and then runs on
        # CPU without a word: a point must say what really ran, so compare what is active.
        session = ort.InferenceSession(str(path), options, providers=[cfg.provider])
        active = session.get_providers()
        if not active or active[0] != cfg.provider:
            raise BackendError(
                f"backend.provider={cfg.provider} asked for, but ONNX Runtime activated "
                f"{active} (available here: {ort.get_available_providers()}); "
                "choose an available provider or install the runtime it needs"
            )
        self.session = session
        self._session_args = (str(path), options, [cfg.provider])
        stat = path.stat()
        raw, compressed = remembered_sizes(
            cache_dir,
            f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}",
            lambda: (stat.st_size, len(zlib.compress(path.read_bytes(), 1))),
        )
        self._info = PredictorInfo(
            backend="onnxruntime",
            provider=active[0],
            precision=precision,
            model_bytes=raw,
            model_compressed_bytes=compressed,
            threads=cfg.threads or 0,  # 0: ONNX Runtime's default (one per physical core)
            facts=facts,
            model_sha256=artifact.sha256,
            model_artifact=artifact.name,
        )

    @property
    def info(self) -> PredictorInfo:
        return self._info

    def set_threads(self, threads: int) -> None:
        # Fixed when a session is made: a new session over the same (cached) graph.
        path, options, providers = self._session_args
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=providers)

    def forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.bundle.output_name], inputs)[0]
