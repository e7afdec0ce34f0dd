"""The one interface every deployment strategy implements.

A runner owns how a model is served (in-process, in a container, behind HTTP...); the load
driver owns when requests are sent. The driver calls `start()`, then `infer()` concurrently
from its event loop, then `stop()`; a runner never generates load or computes statistics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Request:
    id: int
    samples: Sequence[Any]


@dataclass(frozen=True)
class Response:
    output: np.ndarray
    # Server-side time: waiting for a worker, then preprocessing + model. Seconds.
    queue_s: float
    compute_s: float


@dataclass
class RunnerFacts:
    """What a runner measured about itself, recorded with every load point."""

    cold_start_s: float = float("nan")  # from start() called to the first inference done
    workers: int = 0
    isolation: str = "none"
    predictor: dict[str, Any] = field(default_factory=dict)  # PredictorInfo.as_row()

    def as_row(self) -> dict[str, Any]:
        return {
            "cold_start_s": self.cold_start_s,
            "workers": self.workers,
            "isolation": self.isolation,
            **self.predictor,
        }


class Runner(ABC):
    name: str

    @abstractmethod
    async def start(self) -> None:
        """Build the predictor (from the config, wherever it runs) and serve one request."""

    @abstractmethod
    async def infer(self, request: Request) -> Response: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @property
    @abstractmethod
    def facts(self) -> RunnerFacts: ...
