"""A model whose service time is known: each request's preprocessing spends `service_ms` in
Python, then one tiny linear layer runs. It stands for models whose cost is Python code (pure
Python pre- and post-processing holds the GIL for its whole duration) and, with `holds_gil`
false, for native code that releases it. The wait sits in preprocessing, so every backend
serves it alike (an ONNX export keeps only the linear layer)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from importlib import metadata

import numpy as np

from bench.config.model import BusyModelConfig
from bench.models.base import ModelBundle

clock = time.perf_counter


def _module(cfg: BusyModelConfig):
    import torch

    torch.manual_seed(cfg.seed)
    return torch.nn.Linear(cfg.in_features, cfg.out_features).eval()


def spend(seconds: float, holds_gil: bool) -> None:
    """Take `seconds`: a busy-wait in Python (the GIL held but for the interpreter's forced
    switches) or a sleep (the GIL released)."""
    if seconds <= 0:
        return
    if not holds_gil:
        time.sleep(seconds)
        return
    end = clock() + seconds
    while clock() < end:
        pass


def build(cfg: BusyModelConfig) -> ModelBundle:
    service_s = cfg.service_ms / 1e3

    def samples(count: int, seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        return list(rng.standard_normal((count, cfg.in_features), dtype=np.float32))

    def preprocess(items: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        spend(service_s * len(items), cfg.holds_gil)
        return {"features": np.stack(items).astype(np.float32, copy=False)}

    def fingerprint() -> str:
        # The weights follow from the shape and the seed (and torch's initialisers); the
        # service time is not part of the exported graph.
        spec = {"busy": [cfg.in_features, cfg.out_features, cfg.seed]}
        spec["torch"] = metadata.version("torch")
        return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]

    return ModelBundle(
        name="busy",
        input_names=("features",),
        output_name="logits",
        dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
        output_kind="logits",
        samples=samples,
        preprocess=preprocess,
        load_module=lambda: _module(cfg),
        fingerprint=fingerprint,
    )
