"""Optimization options. Each names what it does to a torch module (`torch`: "module:function"
taking `(module, opt, device)`, returning `(module, precision)`) and to an exported ONNX graph
(`onnxruntime`: taking `(bundle, base_path, opt, derived_path)`, returning `(path, precision)`),
None where that runtime cannot run it; a structural change (pruning) is `restructure`, applied
before either."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from omegaconf import MISSING

from bench.registry import option
from bench.validation import Choice, at_least, require

_TORCH = "bench.backends.torch_optimize"
_ORT = "bench.backends.ort_optimize"
_PRUNING = "bench.backends.pruning"


@dataclass
class OptimizationConfig:
    name: str = MISSING
    torch: ClassVar[str | None] = None
    onnxruntime: ClassVar[str | None] = None
    # `(module, amount) -> (module, facts)`: changes the network itself, for every backend.
    restructure: ClassVar[str | None] = None
    # Only where a GPU runs it (half precision).
    gpu_only: ClassVar[bool] = False

    def validate(self, at: str = "optimization") -> None:
        """Ranges that types alone cannot check."""

    @classmethod
    def refusal(cls, runtime: str) -> str:
        """Why `runtime` (torch or onnxruntime) cannot run this optimization, and what can."""
        other = "onnxruntime" if runtime == "torch" else "torch"
        backends = {"torch": "backend=torch or torch_compile", "onnxruntime": "backend=onnxruntime"}
        hint = (
            f"it runs with {backends[other]}"
            if getattr(cls, other) is not None
            else "no backend runs it here"
        )
        return f"optimization={cls.name}: not available with {backends[runtime]}; {hint}"


@option("optimization")
@dataclass
class NoOptimizationConfig(OptimizationConfig):
    """The model as it is, fp32."""

    name: str = "none"
    torch: ClassVar[str | None] = f"{_TORCH}:fp32"
    onnxruntime: ClassVar[str | None] = f"{_ORT}:unchanged"


@option("optimization")
@dataclass
class Int8DynamicConfig(OptimizationConfig):
    """Weights int8 ahead of time, activations quantized per call (torch and ONNX Runtime)."""

    name: str = "int8_dynamic"
    # Per-channel scales keep MiniLM's cosine near 0.99 where per-tensor drops it to ~0.93.
    per_channel: bool = True
    # ONNX Runtime: 7-bit weights. null: where the CPU has no VNNI, whose u8 x s8 kernels
    # saturate on 8-bit weights (the seeded MLP's cosine 0.965 against 0.9998 with it, on an
    # AVX2-only EPYC); the choice is in the row's predictor_facts. torch's fbgemm reduces
    # the range itself.
    reduce_range: bool | None = None
    torch: ClassVar[str | None] = f"{_TORCH}:int8_dynamic"
    onnxruntime: ClassVar[str | None] = f"{_ORT}:int8_dynamic"


class CalibrationMethod(Choice):
    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


@option("optimization")
@dataclass
class Int8StaticConfig(OptimizationConfig):
    """ONNX Runtime QDQ: weights and activations int8, activation ranges calibrated on the
    model's own sample inputs. The CNN choice, where dynamic quantization is slow and wrong."""

    name: str = "int8_static"
    per_channel: bool = True
    # 7-bit weights; null: where the CPU has no VNNI, as for int8_dynamic (static QDQ's cosine
    # on the seeded MLP: 0.948 with 8-bit weights on an AVX2-only EPYC).
    reduce_range: bool | None = None
    calibration_samples: int = 32
    # percentile kept 28 of 32 EfficientNet top-1 answers here where minmax kept 25.
    calibration_method: CalibrationMethod = CalibrationMethod.percentile
    onnxruntime: ClassVar[str | None] = f"{_ORT}:int8_static"

    def validate(self, at: str = "optimization") -> None:
        at_least(self.calibration_samples, 1, f"{at}.calibration_samples")


@option("optimization")
@dataclass
class Bf16Config(OptimizationConfig):
    """bfloat16 weights and activations (torch); fast where the CPU has AVX512-BF16 or AMX."""

    name: str = "bf16"
    torch: ClassVar[str | None] = f"{_TORCH}:bf16"


@option("optimization")
@dataclass
class Fp16Config(OptimizationConfig):
    """float16 on a GPU (torch .half(), ONNX Runtime's float16 conversion)."""

    name: str = "fp16"
    gpu_only: ClassVar[bool] = True
    torch: ClassVar[str | None] = f"{_TORCH}:fp16"
    onnxruntime: ClassVar[str | None] = f"{_ORT}:fp16"


@dataclass
class PruningConfig(OptimizationConfig):
    amount: float = 0.5
    torch: ClassVar[str | None] = f"{_TORCH}:fp32"
    onnxruntime: ClassVar[str | None] = f"{_ORT}:unchanged"

    def validate(self, at: str = "optimization") -> None:
        require(
            0.0 < self.amount < 1.0,
            f"{at}.amount",
            f"must be between 0 and 1 (the fraction removed), got {self.amount}",
        )


@option("optimization")
@dataclass
class PruneStructuredConfig(PruningConfig):
    """Remove the least important feed-forward neurons: the matrices really get smaller."""

    name: str = "prune_structured"
    amount: float = 0.3  # fraction of each feed-forward block's hidden neurons removed
    restructure: ClassVar[str | None] = f"{_PRUNING}:prune_structured"


@option("optimization")
@dataclass
class PruneMagnitudeConfig(PruningConfig):
    """Zero the smallest weights (unstructured): a smaller compressed file, no dense speed-up."""

    name: str = "prune_magnitude"
    amount: float = 0.5  # fraction of all Linear weights set to zero
    restructure: ClassVar[str | None] = f"{_PRUNING}:prune_magnitude"
