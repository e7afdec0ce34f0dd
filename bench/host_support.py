"""Whether this host can run a configuration at all, asked once before anything is measured: a
GPU provider, device or precision where the host has no GPU, or an execution provider its ONNX
Runtime does not offer, would otherwise fail every load point at runner start.

A host check, not config validation: the configs' pure `validate()`s say what is well formed
anywhere; this says what this machine has (ONNX Runtime's providers, torch's CUDA, the GPUs
NVML sees), so each refusal names the field and what the host offers instead.
"""

from __future__ import annotations

from typing import Any

from bench.metrics.gpu import gpu_names
from bench.registry import typed
from bench.validation import ConfigError

# Execution providers that run on a GPU: each needs one on this host.
_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider")


class HostCannotRun(ConfigError):
    """A configuration this host cannot run; the message names the field and what it has."""


def check_host(cfg: Any) -> None:
    """HostCannotRun if the model would be served here on something this host lacks. A
    strategy that serves elsewhere (`endpoint`) is not checked: its backend is not ours."""
    if not typed("strategy", cfg.strategy).serves_here:
        return
    backend = cfg.backend
    optimization = typed("optimization", cfg.optimization)
    if backend.name == "onnxruntime":
        _check_provider(str(backend.provider), optimization)
    else:
        _check_torch_device(str(backend.device), optimization)


def _no_gpu() -> str:
    names = gpu_names()
    return f"GPUs: {', '.join(names)}" if names else "no GPU (NVML sees none)"


def _check_provider(provider: str, optimization: Any) -> None:
    import onnxruntime as ort

    offered = ort.get_available_providers()
    if provider not in offered:
        raise HostCannotRun(
            f"backend.provider={provider}: this host's ONNX Runtime offers {', '.join(offered)}"
        )
    if provider in _GPU_PROVIDERS and not gpu_names():
        raise HostCannotRun(
            f"backend.provider={provider}: this host has {_no_gpu()}; ONNX Runtime lists the "
            "provider but cannot activate it without one (use CPUExecutionProvider)"
        )
    if optimization.gpu_only and provider not in _GPU_PROVIDERS:
        raise HostCannotRun(
            f"optimization={optimization.name}: runs on a GPU provider, and backend.provider is "
            f"{provider}; this host has {_no_gpu()} (on CPU use int8_dynamic or int8_static)"
        )


def _check_torch_device(device: str, optimization: Any) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise HostCannotRun(
            f"backend.device=cuda: torch here sees no CUDA device (torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda or 'none'}; {_no_gpu()}); use backend.device=cpu"
        )
    if optimization.gpu_only and device != "cuda":
        raise HostCannotRun(
            f"optimization={optimization.name}: runs on a GPU, and backend.device is {device}; "
            f"this host has {_no_gpu()} (on CPU use optimization=bf16)"
        )
