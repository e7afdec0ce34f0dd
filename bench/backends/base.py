"""The one interface every backend implements: a `Predictor` that serves raw samples."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench.models.base import ModelBundle


class BackendError(RuntimeError):
    """A backend that cannot serve as configured (say, the provider asked for is not active)."""


@dataclass(frozen=True)
class PredictorInfo:
    """Facts about a predictor, recorded in every result row."""

    backend: str
    provider: str  # what actually runs the model: "torch-cpu", "CPUExecutionProvider", ...
    precision: str  # "fp32", "int8", ...
    model_bytes: int  # size of the serialised model that runs (0 where nothing is serialised)
    threads: int  # intra-op threads

    def as_row(self) -> dict[str, Any]:
        return {f"predictor_{key}": value for key, value in asdict(self).items()}


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
