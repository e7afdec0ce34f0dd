"""A model whose service time is known: each request's preprocessing spends `service_ms` in
Python, then one tiny linear layer runs. It stands for models whose cost is Python code (pure
Python pre- and post-processing holds the GIL for its whole duration) and, with `holds_gil`
false, for native code that releases it. The wait sits in preprocessing, so every backend
serves it alike (an ONNX export keeps only the linear layer)."""

from __future__ import annotations

import time

from bench.config.model import BusyModelConfig
from bench.models.base import ModelBundle
from bench.models.mlp import features_to_logits

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
    # Plain values, read from the config once: a config node's attribute costs tens of
    # microseconds, which every request would pay.
    service_s, holds_gil = cfg.service_ms / 1e3, bool(cfg.holds_gil)
    # The service time is not part of the exported graph, so not of the fingerprint.
    return features_to_logits(
        "busy",
        [cfg.in_features, cfg.out_features, cfg.seed],
        cfg.in_features,
        lambda: _module(cfg),
        spend=lambda items: spend(service_s * items, holds_gil),
    )
