"""The serving worker's Prometheus metrics as a contract: their names, their labels and the
latency buckets the SLO gives them. Written once, here, and read by the three parties that must
agree on them: the worker that exposes them (`runners.worker_metrics`), the harness that scrapes
them during a run (`bench.metrics.scrape`) and the plan's alerting rules and dashboard that
query them in production (`bench.capacity.monitoring`). Pure: it measures nothing.

The latency buckets are fractions and multiples of the SLO, the SLO itself always one of them:
a burn-rate alert counts requests slower than the SLO exactly (`le` = the SLO), and percentiles
estimated from the buckets are finest where a decision is made (around the SLO).
"""

from __future__ import annotations

import math
from typing import Any

from bench.config.plan import PlanConfig

PREFIX = "bench"
# Counters (the exposition adds `_total`): requests that reached the model; those that failed,
# by `reason` (`REASONS`).
REQUESTS = f"{PREFIX}_requests_total"
FAILURES = f"{PREFIX}_request_failures_total"
# A request refused as malformed (HTTP 400, INVALID_ARGUMENT) is the client's error; one the
# model failed on (HTTP 500, INTERNAL) is the server's, and only those spend the error budget.
BAD_REQUEST = "bad_request"
MODEL_ERROR = "model_error"
REASONS = (BAD_REQUEST, MODEL_ERROR)
# Histograms, seconds, of requests served: arrival at the model to the response built; waiting
# for a predictor thread (and for a batch to form); the predictor call of the request's batch.
LATENCY = f"{PREFIX}_request_duration_seconds"
QUEUE = f"{PREFIX}_queue_duration_seconds"
COMPUTE = f"{PREFIX}_compute_duration_seconds"
# Histogram of items per predictor call, per call (a batch of 8 requests is one observation).
BATCH_SIZE = f"{PREFIX}_batch_size"
# Counter (the exposition adds `_total`): tokens a generative model generated for requests.
GENERATED_TOKENS = f"{PREFIX}_generated_tokens_total"
# Gauge: requests inside the worker now.
IN_FLIGHT = f"{PREFIX}_requests_in_flight"
# Info (the exposition adds `_info`): one series per worker process, whose labels name what it
# serves (IDENTITY); counting them counts the replicas up.
MODEL_INFO = f"{PREFIX}_model_info"
IDENTITY = ("backend", "optimization", "precision", "provider", "fingerprint")
# Every series carries the served model's name in this label.
MODEL_LABEL = "model"

# The latency buckets, as multiples of the SLO: geometric below it down to 1/64 (a model served
# in 2% of its SLO still gets a bucket of its own), three between half of it and it, and up to
# 8x above it, where an overload shows how far past the SLO it went.
SLO_MULTIPLES = (1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 1, 3 / 2, 2, 4, 8)


def slo_seconds(cfg: Any) -> float:
    """The SLO a worker's buckets are cut at: the run's (`scenario.slo_ms`) where one is set,
    else the plan's target (`plan.slo_ms`, which the deployed image's config carries), else the
    plan's default."""
    for group in ("scenario", "plan"):
        node = cfg.get(group) if hasattr(cfg, "get") else None
        slo_ms = node.get("slo_ms") if node is not None else None
        if slo_ms:
            return float(slo_ms) / 1e3
    return PlanConfig().slo_ms / 1e3


def latency_buckets(slo_s: float) -> tuple[float, ...]:
    """The upper bounds of the latency histograms for an SLO of `slo_s` seconds (no +Inf)."""
    if not (slo_s > 0 and math.isfinite(slo_s)):
        raise ValueError(f"the SLO must be a positive number of seconds, got {slo_s}")
    # Rounded to 12 digits: 0.1 x 3/4 is 0.075, not 0.07500000000000001, in every label.
    return tuple(float(f"{slo_s * multiple:.12g}") for multiple in SLO_MULTIPLES)


def bucket_label(seconds: float) -> str:
    """A bucket's `le` label as the worker's exposition writes it (and a rule must match it)."""
    from prometheus_client.utils import floatToGoString  # the library, only where it is used

    return floatToGoString(seconds)


def batch_buckets(max_batch_size: int) -> tuple[int, ...]:
    """The upper bounds of the batch-size histogram: powers of two up to the largest batch the
    batcher forms, and that one (no +Inf)."""
    bounds = [1]
    while bounds[-1] * 2 < max_batch_size:
        bounds.append(bounds[-1] * 2)
    if bounds[-1] != max_batch_size and max_batch_size > 1:
        bounds.append(max_batch_size)
    return tuple(bounds)
