"""`torch.compile` over the eager (optimized) module, compiled at start-up and timed."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from bench.backends.base import PredictorInfo
from bench.backends.torch_eager import TorchPredictor
from bench.config.backend import TorchCompileBackendConfig
from bench.config.optimization import OptimizationConfig
from bench.models.base import ModelBundle
from bench.validation import ConfigError


class TorchCompilePredictor(TorchPredictor):
    def __init__(
        self,
        bundle: ModelBundle,
        cfg: TorchCompileBackendConfig,
        opt: OptimizationConfig | None,
        cache_dir: str,
    ) -> None:
        folder = Path(cfg.inductor_cache_dir or Path(cache_dir) / "inductor").expanduser()
        warm = folder.is_dir() and any(folder.iterdir())
        # Inductor reads its cache folder from this variable alone, when it compiles.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
        super().__init__(bundle, cfg, opt, cache_dir)
        if isinstance(self.module, torch.jit.ScriptModule):
            raise ConfigError(
                f"backend=torch_compile: model={bundle.name} is TorchScript, which torch.compile "
                "refuses; serve it with backend=torch or export it with torch.export instead"
            )
        self.cfg = cfg
        self.module = torch.compile(self.module, mode=cfg.mode, dynamic=cfg.dynamic)
        started = time.perf_counter()
        # Two sizes, so the batch axis is compiled symbolic and not specialised to one.
        for count in (2, 1):
            self.predict(bundle.samples(count, 0))
        self._info = replace(
            self._info,
            compile_s=time.perf_counter() - started,
            compile_cache="warm" if warm else "cold",
        )

    @property
    def info(self) -> PredictorInfo:
        return self._info

    def language_model(self) -> torch.nn.Module:
        """A generative model's transformers model, compiled for generation on its own (the
        v2 module compiled above runs whole prompts, without a cache)."""
        return compiled_language_model(self.module._orig_mod.lm, self.cfg.mode)


def compiled_language_model(lm: torch.nn.Module, mode: str) -> torch.nn.Module:
    """`lm` compiled for token-by-token generation: with dynamic shapes, as the cache grows a
    column per step and rows join and leave (validation refuses `backend.dynamic=false` for
    a generative model). Its graphs are built when the engine warms up
    (`runners.decode_batch.warm_up`)."""
    return torch.compile(lm, mode=mode, dynamic=True)
