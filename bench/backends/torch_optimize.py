"""Optimizations applied to a torch module: the ones that change its structure (pruning, shared
with the ONNX export) and the ones only torch runs (dynamic int8, bf16, fp16)."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from bench.backends.pruning import prune_magnitude, prune_structured
from bench.config import ConfigError, OptimizationConfig


def restructure(module: nn.Module, opt: OptimizationConfig) -> tuple[nn.Module, dict]:
    """Pruning, or the module unchanged: what an exported graph should be built from."""
    if opt.name == "prune_structured":
        return prune_structured(module, opt.amount)
    if opt.name == "prune_magnitude":
        return prune_magnitude(module, opt.amount)
    return module, {}


def torch_variant(
    module: nn.Module, opt: OptimizationConfig, device: torch.device
) -> tuple[nn.Module, str, dict]:
    """(module, precision, facts) of `module` optimized as `opt` says, on `device`."""
    module, facts = restructure(module, opt)
    if opt.name in ("none", "prune_structured", "prune_magnitude"):
        return module.to(device), "fp32", facts
    if opt.name == "int8_dynamic":
        if device.type != "cpu":
            raise ConfigError(
                "optimization=int8_dynamic: torch runs it on CPU only; use device=cpu"
            )
        return _int8_dynamic(module, opt.per_channel), "int8", facts
    if opt.name == "bf16":
        return module.to(device=device, dtype=torch.bfloat16), "bf16", facts
    if opt.name == "fp16":
        if device.type != "cuda":
            raise ConfigError(
                "optimization=fp16: half precision is for GPUs (backend.device=cuda); "
                "on CPU use bf16"
            )
        return module.to(device=device, dtype=torch.float16), "fp16", facts
    raise ConfigError(
        f"optimization={opt.name}: not available with a torch backend; "
        "int8_static is ONNX Runtime's QDQ quantization: use backend=onnxruntime"
    )


def _int8_dynamic(module: nn.Module, per_channel: bool) -> nn.Module:
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        per_channel_dynamic_qconfig,
        quantize_dynamic,
    )

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with warnings.catch_warnings():
        # torch.ao's eager quantization warns that it moves to torchao; it still works here.
        warnings.simplefilter("ignore")
        return quantize_dynamic(module, {nn.Linear: qconfig}, dtype=torch.qint8)
