"""A small synthetic MLP: fast, deterministic, for tests and for the harness's own overhead."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from importlib import metadata
from itertools import pairwise
from typing import Any

import numpy as np

from bench.config.model import MLPConfig
from bench.models.base import ModelBundle


def _module(cfg: MLPConfig):
    import torch

    torch.manual_seed(cfg.seed)
    widths = [cfg.in_features, *cfg.hidden]
    layers: list[torch.nn.Module] = []
    for fan_in, fan_out in pairwise(widths):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(widths[-1], cfg.out_features))
    return torch.nn.Sequential(*layers).eval()


def build(cfg: MLPConfig) -> ModelBundle:
    spec = [cfg.in_features, list(cfg.hidden), cfg.out_features, cfg.seed]
    return features_to_logits("mlp", spec, cfg.in_features, lambda: _module(cfg))


def features_to_logits(
    name: str,
    spec: list,
    in_features: int,
    load_module: Callable[[], Any],
    spend: Callable[[int], None] = lambda items: None,
) -> ModelBundle:
    """A seeded model from `features` (standard normal, `in_features` wide) to `logits`, whose
    weights follow from `spec` (its shape and seed); `spend(items)` runs in preprocessing."""

    def samples(count: int, seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        return list(rng.standard_normal((count, in_features), dtype=np.float32))

    def preprocess(items: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        spend(len(items))
        return {"features": np.stack(items).astype(np.float32, copy=False)}

    def fingerprint() -> str:
        # The weights follow from the architecture and the seed; the torch version is part of
        # the key because torch's initialisers may change between releases. Read from the
        # package's metadata: importing torch would cost an ONNX Runtime worker seconds.
        key = {name: spec, "torch": metadata.version("torch")}
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]

    return ModelBundle(
        name=name,
        input_names=("features",),
        output_name="logits",
        dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
        output_kind="logits",
        samples=samples,
        preprocess=preprocess,
        load_module=load_module,
        fingerprint=fingerprint,
    )
