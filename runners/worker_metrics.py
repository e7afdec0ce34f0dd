"""The worker's Prometheus metrics (`GET /metrics` on an HTTP worker's port; a gRPC worker
serves them on an HTTP port of its own), with the `prometheus-client` library; their names and
buckets are `bench.monitoring`'s.

One registry per worker process: each replica is its own process, scraped as its own target
(Prometheus adds `instance`), so nothing is shared across processes and no multiprocess mode is
needed. Inside a process, requests are counted and timed on the event loop's thread, where the
model service answers them; the predictor threads only count the batches they run, which the
serving core keeps and this registry reads when scraped, as it reads the requests in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cached_property

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import HistogramMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from bench import monitoring as names
from runners.serving import ServingCore

# No `_created` series: a gauge beside every counter and histogram that no rule or dashboard
# reads, half the exposition's lines. Process-wide, as the library keeps it; a worker is its own
# process.
disable_created_metrics()


class WorkerMetrics:
    """The metrics of one model served by `core`, latencies bucketed around `slo_s`."""

    def __init__(
        self,
        model: str,
        core: ServingCore,
        slo_s: float,
        identity: Callable[[], dict[str, str]],
    ) -> None:
        """`identity()`: the labels of the model's info metric (`names.IDENTITY`), asked for at
        the first scrape, once the model is loaded (its fingerprint may read the weights)."""
        self.registry = CollectorRegistry()
        self.in_flight = 0  # changed on the event loop's thread only
        label = [names.MODEL_LABEL]
        buckets = names.latency_buckets(slo_s)
        self._requests = Counter(
            names.REQUESTS.removesuffix("_total"),
            "Inference requests that reached the model.",
            label,
            registry=self.registry,
        ).labels(model)
        failures = Counter(
            names.FAILURES.removesuffix("_total"),
            "Inference requests that failed, by reason: bad_request (malformed, the client's "
            "error) or model_error (the model failed).",
            [names.MODEL_LABEL, "reason"],
            registry=self.registry,
        )
        self._tokens = Counter(
            names.GENERATED_TOKENS.removesuffix("_total"),
            "Tokens generated for requests (a generative model's; streamed or not).",
            label,
            registry=self.registry,
        ).labels(model)
        # Every reason's series exists from the start, at 0: a rate over a series that appears
        # only with the first failure would miss that failure.
        self._failures = {reason: failures.labels(model, reason) for reason in names.REASONS}

        def histogram(name: str, text: str) -> Histogram:
            return Histogram(name, text, label, buckets=buckets, registry=self.registry).labels(
                model
            )

        self._latency = histogram(
            names.LATENCY,
            f"Requests served, from their arrival at the model to their response built; "
            f"buckets around the SLO of {slo_s:g} s.",
        )
        self._queue = histogram(
            names.QUEUE, "Requests served: time waiting for a predictor thread and a batch."
        )
        self._compute = histogram(
            names.COMPUTE, "Requests served: the predictor call of their batch (all its items)."
        )
        Gauge(
            names.IN_FLIGHT, "Inference requests inside the worker now.", label,
            registry=self.registry,
        ).labels(model).set_function(lambda: self.in_flight)  # fmt: skip
        self.registry.register(_Batches(model, core))
        self.registry.register(_Identity(model, identity))

    def received(self) -> None:
        self._requests.inc()
        self.in_flight += 1

    def served(self, latency_s: float, queue_s: float, compute_s: float) -> None:
        self.in_flight -= 1
        self._latency.observe(latency_s)
        self._queue.observe(queue_s)
        self._compute.observe(compute_s)

    def generated(self, tokens: int) -> None:
        """A generation request's tokens, counted as it ends."""
        self._tokens.inc(tokens)

    def refused(self) -> None:
        """A malformed request: the client's error."""
        self.in_flight -= 1
        self._failures[names.BAD_REQUEST].inc()

    def failed(self) -> None:
        """The model failed on a well-formed request."""
        self.in_flight -= 1
        self._failures[names.MODEL_ERROR].inc()

    def cancelled(self) -> None:
        """A request given up on (its client went away): no failure, no latency."""
        self.in_flight -= 1

    def exposition(self) -> tuple[bytes, str]:
        """The registry in Prometheus's text format, and that format's content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Batches(Collector):
    """Items per predictor call as a histogram, read from the serving core's exact counts."""

    def __init__(self, model: str, core: ServingCore) -> None:
        self.model = model
        self.core = core

    def collect(self) -> Iterable[Metric]:
        counts = self.core.batch_counts()
        family = HistogramMetricFamily(
            names.BATCH_SIZE,
            "Items per predictor call, per call (a batch of 8 requests is one call).",
            labels=[names.MODEL_LABEL],
        )
        buckets = []
        for bound in names.batch_buckets(self.core.max_batch_size):
            below = sum(calls for size, calls in counts.items() if size <= bound)
            buckets.append((names.bucket_label(bound), below))
        buckets.append(("+Inf", sum(counts.values())))
        total = sum(size * calls for size, calls in counts.items())
        family.add_metric([self.model], buckets, total)
        yield family


class _Identity(Collector):
    """What the worker serves, as an info metric (one series per worker process)."""

    def __init__(self, model: str, identity: Callable[[], dict[str, str]]) -> None:
        self.model = model
        self._identity = identity

    @cached_property
    def labels(self) -> dict[str, str]:
        found = self._identity()
        return {names.MODEL_LABEL: self.model, **{k: str(found[k]) for k in names.IDENTITY}}

    def collect(self) -> Iterable[Metric]:
        family = InfoMetricFamily(
            names.MODEL_INFO.removesuffix("_info"), "The model this worker serves."
        )
        family.add_metric([], self.labels)
        yield family


def identity_of(core: ServingCore, optimization: str) -> Callable[[], dict[str, str]]:
    """The info metric's labels for the predictor `core` serves, once it is built."""

    def identity() -> dict[str, str]:
        predictor = core.predictor
        info = predictor.info
        return {
            "backend": info.backend,
            "optimization": optimization,
            "precision": info.precision,
            "provider": info.provider,
            # What the weights and architecture hash to (bench.models: `fingerprint()`).
            "fingerprint": predictor.bundle.fingerprint(),
        }

    return identity
