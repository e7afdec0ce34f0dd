"""Backend options: what runs the model. Each names its predictor class, whose constructor is
`(bundle, backend_config, optimization_config, cache_dir)`, imported only when chosen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from omegaconf import MISSING

from bench.registry import option
from bench.validation import Choice, at_least, one_of


class Device(Choice):
    cpu = "cpu"
    cuda = "cuda"


class GraphOptimization(Choice):
    disable = "disable"
    basic = "basic"
    extended = "extended"
    all = "all"


# Open strings (hyphens are no Enum names): checked in validate().
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class BackendConfig:
    name: str = MISSING
    # Intra-op threads per predictor, pinned; null: chosen by a short probe when the predictor
    # is built (1, 2, 4... up to max_threads, timed as sparse requests arrive; the choice and
    # its timings are stored as predictor_threads and predictor_threads_choice).
    threads: int | None = None
    # The most threads the probe tries; null: the cores this process may use. A strategy with
    # several worker processes sets it to cores / processes.
    max_threads: int | None = None
    device: Device = Device.cpu
    predictor: ClassVar[str]
    # Serves a model that comes as an ONNX file only, with no torch module behind it.
    runs_onnx_files: ClassVar[bool] = False

    def validate(self, at: str = "backend") -> None:
        at_least(self.threads, 1, f"{at}.threads", nullable=True)
        at_least(self.max_threads, 1, f"{at}.max_threads", nullable=True)


@option("backend")
@dataclass
class TorchBackendConfig(BackendConfig):
    """PyTorch eager execution."""

    name: str = "torch"
    predictor: ClassVar[str] = "bench.backends.torch_eager:TorchPredictor"


@option("backend")
@dataclass
class TorchCompileBackendConfig(BackendConfig):
    """`torch.compile` over the (optimized) eager module; compiled once at start-up."""

    name: str = "torch_compile"
    mode: str = "default"  # default | reduce-overhead | max-autotune | max-autotune-no-cudagraphs
    # Shapes vary per request (sequence length, batch): compile them as symbolic once rather
    # than recompiling mid-measurement whenever a new shape arrives.
    dynamic: bool = True
    # Inductor's cache folder; null: <cache_dir>/inductor. Set explicitly so cold and warm
    # compiles are told apart, instead of depending on a shared default under /tmp.
    inductor_cache_dir: str | None = None
    predictor: ClassVar[str] = "bench.backends.torch_compile:TorchCompilePredictor"

    def validate(self, at: str = "backend") -> None:
        super().validate(at)
        one_of(self.mode, COMPILE_MODES, f"{at}.mode")


@option("backend")
@dataclass
class OnnxRuntimeBackendConfig(BackendConfig):
    """ONNX Runtime on an exported (and optionally optimized) graph, cached by content hash."""

    name: str = "onnxruntime"
    # Execution provider asked for; the one actually active is recorded and must match.
    provider: str = "CPUExecutionProvider"
    graph_optimization: GraphOptimization = GraphOptimization.all
    opset: int = 18
    predictor: ClassVar[str] = "bench.backends.onnxruntime:OnnxRuntimePredictor"
    runs_onnx_files: ClassVar[bool] = True

    def validate(self, at: str = "backend") -> None:
        super().validate(at)
        at_least(self.opset, 7, f"{at}.opset")
