"""Optimizations applied to a torch module: the ones that change its structure (pruning, shared
with the ONNX export) and the ones only torch runs (dynamic int8, bf16, fp16). Each
optimization's config names which of these functions it is (`bench.config.optimization`)."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from bench.config.optimization import OptimizationConfig
from bench.registry import option_class, resolve
from bench.validation import ConfigError


def restructure(module: nn.Module, opt: OptimizationConfig) -> tuple[nn.Module, dict]:
    """Pruning, or the module unchanged: what an exported graph should be built from."""
    target = option_class("optimization", opt.name).restructure
    return resolve(target)(module, opt.amount) if target else (module, {})


def torch_variant(
    module: nn.Module, opt: OptimizationConfig, device: torch.device
) -> tuple[nn.Module, str, dict]:
    """(module, precision, facts) of `module` optimized as `opt` says, on `device`."""
    option = option_class("optimization", opt.name)
    if option.torch is None:
        raise ConfigError(option.refusal("torch"))
    module, facts = restructure(module, opt)
    module, precision = resolve(option.torch)(module, opt, device)
    return module, precision, facts


# What each optimization does to a (restructured) module: (module, opt, device) ->
# (module, precision).


def fp32(module: nn.Module, opt: OptimizationConfig, device: torch.device):
    return module.to(device), "fp32"


def int8_dynamic(module: nn.Module, opt: OptimizationConfig, device: torch.device):
    if device.type != "cpu":
        raise ConfigError("optimization=int8_dynamic: torch runs it on CPU only; use device=cpu")
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        per_channel_dynamic_qconfig,
        quantize_dynamic,
    )

    qconfig = per_channel_dynamic_qconfig if opt.per_channel else default_dynamic_qconfig
    with warnings.catch_warnings():
        # torch.ao's eager quantization warns that it moves to torchao; it still works here.
        warnings.simplefilter("ignore")
        return quantize_dynamic(module, {nn.Linear: qconfig}, dtype=torch.qint8), "int8"


def bf16(module: nn.Module, opt: OptimizationConfig, device: torch.device):
    return module.to(device=device, dtype=torch.bfloat16), "bf16"


def fp16(module: nn.Module, opt: OptimizationConfig, device: torch.device):
    if device.type != "cuda":
        raise ConfigError(
            "optimization=fp16: half precision is for GPUs (backend.device=cuda); on CPU use bf16"
        )
    return module.to(device=device, dtype=torch.float16), "fp16"
