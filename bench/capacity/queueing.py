"""A discrete-event simulation of an M/G/c queue driven by measured service times.

Closed-form M/M/c assumes exponential service times; inference service times are nearly
constant with a long right tail, and the p99 of a queue depends on exactly that shape. So the
planner replays the measured samples instead: Poisson arrivals, first-come first-served,
`c` identical workers, the service times taken from the measured ones in runs of consecutive
requests (`SERVICE_RUN`), not one by one.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from bench.results.histogram import percentile as nearest_rank

_QUANTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}

# Service times are replayed in runs of this many consecutive measured requests (a moving-block
# bootstrap), in the order they were measured. A host's speed drifts over seconds (other
# tenants, clocks, the caches the load leaves), so slow requests come in spells, and a spell
# builds a queue that the same times scattered one by one never build. Replayed one by one, the
# times of MiniLM's 152 qps point on this 2-core host predicted that point's p99 at 45 ms
# against 70 ms measured; in runs of 200 to 1,000, 66-72 ms, and the planner's capacity went
# from 15% above the measured to within 6% of it. 256 requests: a second or two at the rates
# these models serve, the scale of the drift seen.
SERVICE_RUN = 256


class Pool:
    """FCFS workers sharing one queue, whose number may change while requests flow: the
    simulation the planner's sizing and its autoscaling share. A worker added at `at` takes
    requests from then on (a replica ready after its cold start); a removed one finishes the
    request it holds and takes no more (a pod's graceful termination)."""

    def __init__(self, workers: int, at: float = 0.0) -> None:
        self._free_at = [at] * workers  # a heap of the times each worker next becomes free
        self.busy_s = 0.0  # service seconds begun since the last `take_busy`

    def __len__(self) -> int:
        return len(self._free_at)

    def add(self, count: int, at: float) -> None:
        for _ in range(count):
            heapq.heappush(self._free_at, at)

    def remove(self, count: int) -> None:
        """Take out the `count` workers free last: those not yet started, then the busiest."""
        kept = sorted(self._free_at)[: max(len(self._free_at) - count, 0)]
        heapq.heapify(kept)
        self._free_at = kept

    def serve(self, arrivals: np.ndarray, services: np.ndarray) -> np.ndarray:
        """Latencies (seconds, wait + service) of requests arriving at `arrivals` (sorted) and
        needing `services`, each taken by the first worker free."""
        free_at, replace = self._free_at, heapq.heapreplace
        latencies = np.empty(len(arrivals))
        for i, (arrival, service) in enumerate(
            zip(arrivals.tolist(), services.tolist(), strict=True)
        ):
            start = max(arrival, free_at[0])
            replace(free_at, start + service)
            latencies[i] = start + service - arrival
        self.busy_s += float(np.sum(services))
        return latencies

    def take_busy(self) -> float:
        """Service seconds begun since the last call."""
        busy, self.busy_s = self.busy_s, 0.0
        return busy


@dataclass(frozen=True)
class OnDemand:
    """What scale-to-zero instances did over a trace (`on_demand`)."""

    latencies_s: np.ndarray
    cold_starts: int
    instance_s: float  # spawn to stop, keep-alive included (instance-based billing)
    busy_s: float  # cold starts plus requests served (request-based billing)


def on_demand(
    arrivals: np.ndarray,
    services: np.ndarray,
    cold_start_s: float,
    keep_alive_s: float,
    max_instances: int,
) -> OnDemand:
    """Scale to zero, as the `serverless` strategy serves: a request that finds an instance
    idle takes it; else a new one is started (up to `max_instances`) and the request waits for
    its cold start; else it waits for the first instance free. An instance idle `keep_alive_s`
    stops. One request per instance at a time."""
    free_at: list[tuple[float, float]] = []  # a heap of (next free, spawned at) per instance
    latencies = np.empty(len(arrivals))
    cold, lived = 0, 0.0
    for i, (arrival, service) in enumerate(zip(arrivals.tolist(), services.tolist(), strict=True)):
        while free_at and free_at[0][0] + keep_alive_s < arrival:
            free, spawned = heapq.heappop(free_at)
            lived += free + keep_alive_s - spawned
        if free_at and free_at[0][0] <= arrival:
            start, spawned = arrival, heapq.heappop(free_at)[1]
        elif len(free_at) < max_instances:
            start, spawned = arrival + cold_start_s, arrival
            cold += 1
        else:
            start, spawned = heapq.heappop(free_at)
        heapq.heappush(free_at, (start + service, spawned))
        latencies[i] = start + service - arrival
    lived += sum(free + keep_alive_s - spawned for free, spawned in free_at)
    busy = float(np.sum(services)) + cold * cold_start_s
    return OnDemand(latencies, cold, lived, busy)


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
    services = replayed(service_s, requests, rng)
    latencies = Pool(workers).serve(arrivals, services)
    if extra_s is not None and len(extra_s):
        extra = np.random.default_rng(seed + 1).choice(np.asarray(extra_s, dtype=float), requests)
        latencies += extra
    return latencies[requests // 10 :]


def replayed(service_s: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` service times: runs of `SERVICE_RUN` consecutive measured ones, each run starting
    at a random request (one by one where fewer were measured)."""
    measured = np.asarray(service_s, dtype=float)
    if len(measured) <= SERVICE_RUN:
        return rng.choice(measured, size=size, replace=True)
    starts = rng.integers(0, len(measured) - SERVICE_RUN + 1, size=-(-size // SERVICE_RUN))
    return measured[(starts[:, None] + np.arange(SERVICE_RUN)).ravel()[:size]]


def cache_mix(
    hit_s: np.ndarray, miss_s: np.ndarray, hit_ratio: float, size: int = 20_000, seed: int = 0
) -> np.ndarray:
    """Service times of a server behind a response cache, for `simulate` to replay: `size`
    draws, a share `hit_ratio` of them (rounded) from the measured hits' and the rest from the
    measured misses' service times, shuffled."""
    rng = np.random.default_rng(seed)
    hits = round(hit_ratio * size) if len(hit_s) else 0
    drawn = np.concatenate(
        [
            rng.choice(np.asarray(hit_s, dtype=float), size=hits),
            rng.choice(np.asarray(miss_s, dtype=float), size=size - hits),
        ]
    )
    return rng.permutation(drawn)


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
