"""The system under test, as the load driver sees it: the one interface every deployment
strategy (`runners/`) implements. It belongs to the driver, as LoadGen's SUT interface belongs
to LoadGen: runners import it; nothing here imports a runner.

A runner owns how a model is served (in-process, in a container, behind HTTP...); the load
driver owns when requests are sent. The driver calls `start()`, then `infer()` concurrently
from its event loop, then `stop()`; a runner never generates load or computes statistics.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class RunnerError(RuntimeError):
    """A runner that cannot start or serve as configured; the message says why and what to do."""


@dataclass(frozen=True)
class Request:
    id: int
    samples: Sequence[Any]
    # When it was sent, where the load sender sent it and the thread that read it from the
    # sender's pipe issues it (perf_counter seconds; NaN otherwise): an in-process server
    # counts its queue time from then.
    sent: float = math.nan
    # The issuing thread has nothing else to do before the next request comes (the pipe's
    # reader, caught up, and the model's calls short): an in-process runner may serve this one
    # in it; what the sender sends meanwhile waits in its pipe, as behind a server's socket.
    serve_here: bool = False


@dataclass(frozen=True)
class TokenStream:
    """What a generative request streamed back: when each chunk carrying text arrived (in
    `time.perf_counter()` seconds, the driver's clock), and its token counts, with where the
    output count came from: "usage" (the server's `usage.completion_tokens`) or "stream" (one
    token per chunk carrying text, where the server gave no usage)."""

    times: tuple[float, ...]
    output_tokens: int
    # The server's `usage.prompt_tokens` where given, else the harness's own count of the
    # prompt (the tokenizer's, or words: see `bench.load.generation`).
    input_tokens: int
    counted_by: str  # "usage" or "stream"


@dataclass(frozen=True)
class Response:
    output: np.ndarray
    # Server-side time: waiting for a worker (and for a batch to form), then preprocessing +
    # model for the whole batch. Seconds.
    queue_s: float
    compute_s: float
    # Answered by a response cache in front of the model (True), by the model behind one
    # (False), or no cache (None).
    cache_hit: bool | None = None
    # A generative request's streamed tokens (None: the model does not generate).
    tokens: TokenStream | None = None
    # The CPU time the serving thread spent in compute, where an in-process runner timed it
    # (NaN: not timed): a call that sleeps or waits on native code takes less than compute_s.
    compute_cpu_s: float = math.nan


_NAN = float("nan")

# What a runner's `issue` calls when a request is done: its response, or the exception that
# failed it.
Complete = Callable[["Response | BaseException"], None]


@dataclass(frozen=True)
class Fault:
    """Something beneath a runner broke while it served: a process it started exited."""

    what: str  # "http replica 0 exited with SIGKILL"
    at: float  # when it was noticed, in time.perf_counter() seconds (the driver's clock)


@dataclass(frozen=True)
class MetricsSource:
    """Where the servers behind a runner expose Prometheus metrics: one URL per process (each
    replica keeps its own), and the name the served model has in their labels."""

    urls: tuple[str, ...]
    model: str


@dataclass
class RunnerFacts:
    """What a runner measured about itself, recorded with every load point."""

    # From start() called to the first inference done (serverless: the median of the load
    # point's cold starts, each from an instance spawned to it ready).
    cold_start_s: float = _NAN
    # Its parts, where the runner can tell them apart (NaN where it cannot): a worker process
    # starting (the interpreter, up to our first line), its imports (the harness's and the
    # backend framework's), building the predictor, its first inference, and the rest (server
    # start-up, readiness, the first request over the wire, a load balancer). With replicas:
    # those of the last one ready.
    cold_start_process_s: float = _NAN
    cold_start_imports_s: float = _NAN
    cold_start_model_load_s: float = _NAN
    cold_start_first_inference_s: float = _NAN
    cold_start_serving_s: float = _NAN
    workers: int = 0  # predictor threads serving in parallel, all replicas together
    replicas: int = 1
    isolation: str = "none"
    protocol: str = "none"  # how requests reach the model: none (in-process), http, grpc
    load_balancer: str = "none"  # none (the client round robin over replicas), nginx
    # Items per predictor call -> number of calls, since start (warm-ups and accuracy checks
    # included); fractional counts from remote runners round to whole calls.
    batch_sizes_formed: dict[int, float] = field(default_factory=dict)
    predictor: dict[str, Any] = field(default_factory=dict)  # PredictorInfo.as_row()
    # Columns of one strategy only, by name (serverless: cold starts, instances, GB-seconds
    # and cost of the load point).
    strategy_facts: dict[str, Any] = field(default_factory=dict)
    # Limits the workers ran under (container, edge), NaN where none: cores (a CFS quota, or
    # the cores pinned) and MB; limits_note says how they were applied and what was capped.
    cpu_limit: float = _NAN
    memory_limit_mb: float = _NAN
    limits_note: str = ""
    # CFS bandwidth counters since the load point began (see `Runner.begin_point`), all
    # replicas together: periods with work to run, periods that hit the quota, and time
    # throttled, summed over the CPUs' run queues (so it may exceed the wall time). NaN where
    # the isolation keeps no such counters.
    cpu_periods: float = _NAN
    throttled_periods: float = _NAN
    throttled_s: float = _NAN
    # The isolation's own memory accounting since start: the highest peak of one worker, and
    # the workers killed (or refused memory) at their cap.
    memory_peak_mb: float = _NAN
    oom_kills: float = _NAN

    def as_row(self) -> dict[str, Any]:
        return {
            "cold_start_s": self.cold_start_s,
            "cold_start_process_s": self.cold_start_process_s,
            "cold_start_imports_s": self.cold_start_imports_s,
            "cold_start_model_load_s": self.cold_start_model_load_s,
            "cold_start_first_inference_s": self.cold_start_first_inference_s,
            "cold_start_serving_s": self.cold_start_serving_s,
            "workers": self.workers,
            "replicas": self.replicas,
            "isolation": self.isolation,
            "protocol": self.protocol,
            "load_balancer": self.load_balancer,
            "batch_sizes_formed": json.dumps(
                {str(size): round(count) for size, count in sorted(self.batch_sizes_formed.items())}
            ),
            "cpu_limit": self.cpu_limit,
            "memory_limit_mb": self.memory_limit_mb,
            "limits_note": self.limits_note,
            "cpu_periods": self.cpu_periods,
            "throttled_periods": self.throttled_periods,
            "throttled_fraction": (
                self.throttled_periods / self.cpu_periods if self.cpu_periods > 0 else _NAN
            ),
            "throttled_s": self.throttled_s,
            "memory_peak_mb": self.memory_peak_mb,
            "oom_kills": self.oom_kills,
            **self.strategy_facts,
            **self.predictor,
        }


class Runner(ABC):
    name: str
    # Whether `issue` works: in-process runners serve from threads, and the driver hands their
    # requests over without its event loop in between (see `issue`).
    issues_directly: bool = False

    @abstractmethod
    async def start(self) -> None:
        """Build the predictor (from the config, wherever it runs) and serve one request."""

    @abstractmethod
    async def infer(self, request: Request) -> Response: ...

    @abstractmethod
    async def stop(self) -> None: ...

    def issue(self, request: Request, complete: Complete) -> None:
        """Start `request` from the calling thread, any thread, without waiting; call
        `complete` with its response (or the exception that failed it) from the thread that
        finished it, as soon as it is done: LoadGen's IssueQuery and QuerySamplesComplete.

        Only where `issues_directly`. A model in the harness's own process shares its GIL: every
        hop through the driver's event loop waits for the model's Python code to let go (up to
        the interpreter's switch interval) and the model waits for the loop's work, so the
        driver would measure itself. Issued from the sender thread and completed in the
        model's thread, a request costs the model's process what a client's request would."""
        raise NotImplementedError(f"runner {self.name}: serves through infer() only")

    def begin_point(self) -> None:  # noqa: B027 (optional: most runners count nothing per point)
        """A load point begins: counters that `facts` reports per point start again here."""

    def metrics_source(self) -> MetricsSource | None:
        """Where the servers' Prometheus metrics are, scraped by the harness at the start and
        end of each point; None where there are none (the default)."""
        return None

    def faults(self) -> list[Fault]:
        """What broke beneath the runner since `start()` (a serving process that exited), in
        order; a runner with a fault is stopped and started afresh before the next point."""
        return []

    @property
    @abstractmethod
    def facts(self) -> RunnerFacts: ...
