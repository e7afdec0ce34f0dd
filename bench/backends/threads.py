"""Intra-op threads chosen by measurement: a short probe over thread counts when a predictor is
built, unless `backend.threads` pins the count.

Why not a default: for the MLP over HTTP at 20 qps, 2 intra-op threads gave a compute p50 of
6.3 ms against 0.55 ms with 1. Between requests idle threads go to sleep and every request pays
their wake-up, so more threads than a request can use make a fast model look five times slower.
The probe times each count as requests arrive in service, one at a time after an idle gap, and
keeps the fewest threads within a margin of the fastest. It also times each count on calls
back to back, as a worker near capacity serves them: there two threads of MiniLM were 1.6x one
thread's speed against 1.2x after idle gaps, and the tier prediction takes the parallel share of
a request's work from these. Its choice is remembered under the
cache folder, by model, backend, optimization, host and the counts tried, so a worker started
again (a replica, a serverless cold start) reuses it instead of probing inside its start-up.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import replace

from bench.backends.base import Predictor
from bench.backends.memo import remembered
from bench.cpu import cpu_quota_cores

# Each count is timed on this many calls, each after this long idle (longer than the runtimes'
# spin before their threads sleep, so the wake-up a sparse request pays is in the time).
PROBE_CALLS = 12
PROBE_IDLE_S = 0.02
# The fewest threads whose median is within this share of the fastest count's is chosen: a
# count that wins by less is not worth the cores it takes from the rest of the host.
MARGIN = 0.10


def available_cores() -> int:
    """The cores this process may run on, and no more than its CPU quota rounds up to: in a pod
    limited to one CPU, two intra-op threads share one core's quota and are throttled together
    (the probe on the whole host would have chosen two)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = cpu_quota_cores()
    return cores if quota is None else max(1, min(cores, math.ceil(quota)))


def candidates(most: int) -> list[int]:
    """The counts a probe tries: 1, 2, 4, ... up to `most`, and `most` itself."""
    counts, n = [], 1
    while n < most:
        counts.append(n)
        n *= 2
    return [*counts, max(1, most)]


def probe(predictor: Predictor, counts: list[int]) -> tuple[dict[int, float], dict[int, float]]:
    """Median seconds of one single-sample call per thread count: after an idle gap, and back
    to back."""
    sample = predictor.bundle.samples(1, 0)
    idle, busy = {}, {}
    for n in counts:
        predictor.set_threads(n)
        predictor.predict(sample)  # the first call at a new count builds its thread pool
        for medians, gap in ((idle, PROBE_IDLE_S), (busy, 0.0)):
            times = []
            for _ in range(PROBE_CALLS):
                if gap:
                    time.sleep(gap)
                began = time.perf_counter()
                predictor.predict(sample)
                times.append(time.perf_counter() - began)
            medians[n] = sorted(times)[len(times) // 2]
    return idle, busy


def choose(medians: dict[int, float]) -> int:
    """The fewest threads within MARGIN of the fastest median."""
    best = min(medians.values())
    return min(n for n, t in medians.items() if t <= best * (1.0 + MARGIN))


def settle_threads(
    predictor: Predictor,
    pinned: int | None,
    most: int | None,
    identity: str,
    cache_dir: str | None,
) -> None:
    """Set the predictor's intra-op threads: `pinned` if given, else the probe's choice among
    counts up to `most` (null: the cores available), remembered under `cache_dir` by
    `identity` (what the predictor runs); the choice and why go in its info."""
    if pinned is not None:
        # The predictor was built with it.
        chosen, why = pinned, f"pinned: backend.threads={pinned}"
    else:
        counts = candidates(most or available_cores())
        if len(counts) == 1:
            chosen, why = counts[0], f"one core for this predictor: {counts[0]} thread"
        else:
            key = json.dumps([identity, counts, platform.node(), available_cores(), BACK_TO_BACK])
            (chosen, why), again = remembered(
                cache_dir,
                "threads",
                key,
                lambda: _probed(predictor, counts),
                lambda found: (int(found[0]), str(found[1])),
            )
            if again:
                why = f"remembered from an earlier probe on this host: {why}"
        predictor.set_threads(chosen)
    predictor.settle_info(replace(predictor.info, threads=chosen, threads_choice=why))


def _probed(predictor: Predictor, counts: list[int]) -> tuple[int, str]:
    idle, busy = probe(predictor, counts)
    chosen = choose(idle)
    return chosen, (
        f"probed (median of {PROBE_CALLS} calls, each after {PROBE_IDLE_S * 1e3:g} ms idle) "
        f"{_timed(idle)}; {BACK_TO_BACK} {_timed(busy)}; chose {chosen}, the fewest within "
        f"{MARGIN:.0%} of the fastest idle"
    )


# How the probe's explanation introduces its back-to-back timings (`bench.capacity.tiers` reads
# them from the stored `predictor_threads_choice`).
BACK_TO_BACK = "back to back"


def _timed(medians: dict[int, float]) -> str:
    return ", ".join(f"{n}: {t * 1e3:.2f} ms" for n, t in medians.items())
