"""What a worker counts about the requests it serves, as Triton's statistics extension reports
it (`GET /v2/models/{name}/stats`, gRPC `ModelStatistics`): cumulative counts and nanoseconds
per phase, per request, and per batch size the model executed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from runners.batching import Served
from runners.serving import ServingCore


@dataclass
class Duration:
    """Triton's StatisticDuration: how often something happened and its total nanoseconds."""

    count: int = 0
    ns: int = 0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.ns += max(0, round(seconds * 1e9))

    def document(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class ModelStats:
    """Per request: `success` from the request's arrival at the model to its response built,
    `queue` waiting for the predictor, `compute_input` turning tensors into the model's items,
    `compute_infer` the predictor call (preprocessing and model, the whole batch's),
    `compute_output` the output tensor built; `fail` for requests the model failed on."""

    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    # With a response cache (Triton's cache_hit, cache_miss): lookups that answered, and
    # lookups that did not (then the model ran; queue and compute_infer count those only).
    cache_hit: Duration = field(default_factory=Duration)
    cache_miss: Duration = field(default_factory=Duration)
    inference_count: int = 0  # items served, as Triton counts a batch of 8 as 8 inferences
    last_inference_ms: int = 0  # since the epoch

    def served(
        self,
        items: int,
        served: Served,
        arrived: float,
        decoded: float,
        returned: float,
        done: float,
    ) -> None:
        """One request served: times on the serving core's clock."""
        self.success.add(done - arrived)
        self.compute_input.add(decoded - arrived)
        self.compute_output.add(done - returned)
        if served.cache_hit:  # as Triton counts hits: no queue, no inference
            self.cache_hit.add(served.cache_lookup_s)
            self.last_inference_ms = int(time.time() * 1e3)
            return
        if served.cache_hit is False:
            self.cache_miss.add(served.cache_lookup_s)
        self.queue.add(served.queue_s)
        self.compute_infer.add(served.compute_s)
        self.inference_count += items
        self.last_inference_ms = int(time.time() * 1e3)

    def failed(self, seconds: float) -> None:
        self.fail.add(seconds)
        self.last_inference_ms = int(time.time() * 1e3)

    def document(self, name: str, version: str, core: ServingCore) -> dict[str, Any]:
        """One entry of `model_stats`; executions and batch sizes come from the core."""
        phases = (
            "success", "fail", "queue", "compute_input", "compute_infer", "compute_output",
            "cache_hit", "cache_miss",
        )  # fmt: skip
        inference = {phase: getattr(self, phase).document() for phase in phases}
        batches = []
        for size, calls in sorted(core.batch_sizes.items()):
            ns = round(core.batch_compute_s[size] * 1e9)
            batches.append(
                {
                    "batch_size": size,
                    # Only the whole call is timed per batch; its input and output are in it.
                    "compute_input": {"count": calls, "ns": 0},
                    "compute_infer": {"count": calls, "ns": ns},
                    "compute_output": {"count": calls, "ns": 0},
                }
            )
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": sum(core.batch_sizes.values()),
            "inference_stats": inference,
            "batch_stats": batches,
        }
