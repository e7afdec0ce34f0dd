"""PyTorch eager execution, the reference every other backend is compared with."""

from __future__ import annotations

import numpy as np
import torch

from bench.backends.base import BackendError, Predictor, PredictorInfo
from bench.config import BackendConfig
from bench.models.base import ModelBundle


class TorchPredictor(Predictor):
    def __init__(self, bundle: ModelBundle, cfg: BackendConfig) -> None:
        super().__init__(bundle)
        if cfg.device == "cuda" and not torch.cuda.is_available():
            raise BackendError("backend.device=cuda asked for, but torch sees no CUDA device")
        if cfg.threads is not None:
            # Process-wide in torch: every predictor in this process shares the setting.
            torch.set_num_threads(cfg.threads)
        self.device = torch.device(cfg.device)
        self.module = bundle.load_module().to(self.device)
        self._info = PredictorInfo(
            backend="torch",
            provider=f"torch-{self.device.type}",
            precision="fp32",
            model_bytes=0,
            threads=torch.get_num_threads(),
        )

    @property
    def info(self) -> PredictorInfo:
        return self._info

    def forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        args = [torch.from_numpy(inputs[name]).to(self.device) for name in self.bundle.input_names]
        with torch.inference_mode():
            out = self.module(*args)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return out.float().cpu().numpy()
