"""A discrete-event simulation of an M/G/c queue driven by measured service times.

Closed-form M/M/c assumes exponential service times; inference service times are nearly
constant with a long right tail, and the p99 of a queue depends on exactly that shape. So the
planner replays the measured samples instead: Poisson arrivals, first-come first-served,
`c` identical workers, each request's service time drawn from the measured ones.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from bench.results.histogram import percentile as nearest_rank

_QUANTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def simulate(
    service_s: np.ndarray,
    rate_qps: float,
    workers: int,
    requests: int = 20_000,
    seed: int = 0,
    extra_s: np.ndarray | None = None,
) -> np.ndarray:
    """Latencies (seconds, wait + service, + a time drawn from `extra_s` where given: what a
    request spends outside the workers, on the wire and in the client) of `requests` Poisson
    arrivals at `rate_qps` served by `workers` FCFS workers; the first 10% are dropped as the
    queue's warm-up."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate_qps, size=requests))
    services = rng.choice(np.asarray(service_s, dtype=float), size=requests, replace=True)
    free_at = [0.0] * workers  # a heap of the times each worker next becomes free
    latencies = np.empty(requests)
    for i in range(requests):
        start = max(arrivals[i], heapq.heappop(free_at))
        done = start + services[i]
        heapq.heappush(free_at, done)
        latencies[i] = done - arrivals[i]
    if extra_s is not None and len(extra_s):
        extra = np.random.default_rng(seed + 1).choice(np.asarray(extra_s, dtype=float), requests)
        latencies += extra
    return latencies[requests // 10 :]


def percentile_ms(latencies_s: np.ndarray, name: str) -> float:
    return nearest_rank(latencies_s, _QUANTILES[name]) * 1e3


def predicted_percentile_ms(
    service_s: np.ndarray,
    rate_qps: float,
    workers: int,
    percentile: str,
    seed: int = 0,
    extra_s: np.ndarray | None = None,
) -> float:
    """The latency percentile the simulation predicts at `rate_qps` (inf when overloaded)."""
    if rate_qps >= workers / float(np.mean(service_s)):
        return math.inf
    latencies = simulate(service_s, rate_qps, workers, seed=seed, extra_s=extra_s)
    return percentile_ms(latencies, percentile)


def capacity_qps(
    service_s: np.ndarray,
    workers: int,
    slo_ms: float,
    percentile: str,
    tolerance: float = 0.01,
    seed: int = 0,
    extra_s: np.ndarray | None = None,
) -> float:
    """The highest arrival rate whose simulated percentile meets the SLO (0 if none does),
    by bisection between 0 and the workers' saturation rate."""
    saturation = workers / float(np.mean(service_s))
    lo, hi = 0.0, saturation

    def met(rate: float) -> bool:
        return (
            predicted_percentile_ms(service_s, rate, workers, percentile, seed, extra_s) <= slo_ms
        )

    if not met(saturation * 0.01):
        return 0.0
    while hi - lo > tolerance * saturation:
        mid = (lo + hi) / 2.0
        if met(mid):
            lo = mid
        else:
            hi = mid
    return lo
