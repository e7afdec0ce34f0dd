"""PyTorch eager execution (and, with an optimization, its optimized module)."""

from __future__ import annotations

import io
import json
import zlib

import numpy as np
import torch
from omegaconf import OmegaConf

from bench.backends.artifact import torch_artifact
from bench.backends.base import BackendError, Predictor, PredictorInfo, remembered_sizes
from bench.backends.torch_optimize import torch_variant
from bench.config.backend import BackendConfig
from bench.config.optimization import NoOptimizationConfig, OptimizationConfig
from bench.models.base import ModelBundle


def serialized_sizes(module: torch.nn.Module) -> tuple[int, int]:
    """Bytes of the module's saved state, raw and zlib-compressed (the size that magnitude
    pruning shrinks: zeros compress, dense storage does not skip them)."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    raw = buffer.getvalue()
    return len(raw), len(zlib.compress(raw, 1))


class TorchPredictor(Predictor):
    def __init__(
        self,
        bundle: ModelBundle,
        cfg: BackendConfig,
        opt: OptimizationConfig | None = None,
        cache_dir: str | None = None,
    ) -> None:
        """`cache_dir`: where the module's sizes are remembered (None: measured each time)."""
        super().__init__(bundle)
        opt = opt or NoOptimizationConfig()
        if cfg.device == "cuda" and not torch.cuda.is_available():
            raise BackendError("backend.device=cuda asked for, but torch sees no CUDA device")
        if cfg.threads is not None:
            # Process-wide in torch: every predictor in this process shares the setting.
            torch.set_num_threads(cfg.threads)
        self.device = torch.device(cfg.device)
        loaded = bundle.load_module()
        artifact = torch_artifact(bundle, loaded)
        self.module, precision, facts = torch_variant(loaded, opt, self.device)
        # Float inputs follow the module's precision; token ids and masks stay integers.
        self.float_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        if cache_dir is None:
            raw, compressed = serialized_sizes(self.module)
        else:
            settings = OmegaConf.to_container(OmegaConf.create(opt), enum_to_str=True)
            identity = json.dumps([bundle.name, bundle.fingerprint(), settings, cfg.device])
            raw, compressed = remembered_sizes(
                cache_dir, identity, lambda: serialized_sizes(self.module)
            )
        self._info = PredictorInfo(
            backend=cfg.name,
            provider=f"torch-{self.device.type}",
            precision=precision,
            model_bytes=raw,
            model_compressed_bytes=compressed,
            threads=torch.get_num_threads(),
            facts=facts,
            model_sha256=artifact.sha256,
            model_artifact=artifact.name,
        )

    @property
    def info(self) -> PredictorInfo:
        return self._info

    def language_model(self) -> torch.nn.Module:
        """The transformers model a generative model's module holds (`lm`), as the generation
        engine runs its prefill and decode steps: here, the eager (optimized) one."""
        return self.module.lm

    def set_threads(self, threads: int) -> None:
        torch.set_num_threads(threads)  # process-wide, as at construction

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array).to(self.device)
        if self.float_dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(self.float_dtype)
        return tensor

    def forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        args = [self._tensor(inputs[name]) for name in self.bundle.input_names]
        with torch.inference_mode():
            out = self.module(*args)
        if self.device.type == "cuda":
            # Kernels run asynchronously: the clock is read only after the GPU has finished.
            torch.cuda.synchronize()
        return out.float().cpu().numpy()
