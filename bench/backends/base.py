"""The one interface every backend implements: a `Predictor` that serves raw samples."""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench.backends.memo import remembered
from bench.models.base import ModelBundle


class BackendError(RuntimeError):
    """A backend that cannot serve as configured (say, the provider asked for is not active)."""


@dataclass(frozen=True)
class PredictorInfo:
    """Facts about a predictor, recorded in every result row."""

    backend: str
    provider: str  # what actually runs the model: "torch-cpu", "CPUExecutionProvider", ...
    precision: str  # "fp32", "int8", ...
    model_bytes: int  # size of the serialised model that runs
    model_compressed_bytes: int  # the same, zlib-compressed: what sparsity saves on disk
    threads: int  # intra-op threads (0: the runtime's default)
    threads_choice: str = ""  # how `threads` was chosen: pinned, or the probe's timings
    compile_s: float = math.nan  # torch.compile's first call, where the backend compiles
    compile_cache: str = ""  # "cold" or "warm": whether the compiler's cache held this model
    facts: dict[str, Any] = field(default_factory=dict)  # what an optimization did
    # The artifact served, as this predictor loaded it (`bench.backends.artifact`).
    model_sha256: str = ""
    model_artifact: str = ""

    def as_row(self) -> dict[str, Any]:
        row = {f"predictor_{key}": value for key, value in asdict(self).items()}
        row["predictor_facts"] = json.dumps(self.facts, sort_keys=True)
        # The model's identity, not a fact of the runtime: named as the harness checks it.
        row["model_sha256"] = row.pop("predictor_model_sha256")
        row["model_artifact"] = row.pop("predictor_model_artifact")
        return row


def remembered_sizes(
    cache_dir: str, identity: str, measure: Callable[[], tuple[int, int]]
) -> tuple[int, int]:
    """`measure()`'s (raw, compressed) bytes of a model, remembered under `cache_dir` by
    `identity` (what the model is): compressing MiniLM took 2 s here, which every worker's
    cold start would otherwise pay again for numbers that never change."""
    sizes, _ = remembered(
        cache_dir, "sizes", identity, measure, lambda found: (int(found[0]), int(found[1]))
    )
    return sizes


class Predictor(ABC):
    """`predict(samples)` = the model's preprocessing, then `forward` on the named arrays."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle

    @property
    @abstractmethod
    def info(self) -> PredictorInfo: ...

    @abstractmethod
    def forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Run the model on preprocessed inputs; return the output as a numpy array."""

    def predict(self, samples: Sequence[Any]) -> np.ndarray:
        return self.forward(self.bundle.preprocess(samples))

    def set_threads(self, threads: int) -> None:
        """Run with `threads` intra-op threads from now on (the thread probe calls it)."""
        raise BackendError(f"{type(self).__name__} cannot change its intra-op threads")

    def settle_info(self, info: PredictorInfo) -> None:
        """Replace the facts `info` reports (the threads once chosen)."""
        self._info = info
