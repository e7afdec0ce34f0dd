"""Statistics of one load point, from its request log: pure functions, no clocks.

Percentile method (PERCENTILE_METHOD): nearest rank, one rule for every percentile of a row.
Latencies come from HdrHistogram with 3 significant digits over microseconds (the bucket's
highest equivalent value, relative error <= 0.1%), stored encoded, so points, processes and
hosts can be merged later and percentiles recomputed exactly as here; everything else (server
queue and compute, send lateness) by the same rank rule on the exact values.

Each reported latency percentile carries its sampling error, as LoadGen's early stopping does:
`latency_<p>_bound_ms`, the order statistic that bounds it from above at `confidence`, and
`latency_<p>_more_needed`, how many more requests a bound needs (see `bench.load.sampling`).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

import numpy as np
from hdrh.histogram import HdrHistogram

from bench.load.lateness import lateness
from bench.load.log import Measurement
from bench.load.sampling import (
    CONFIDENCE,
    binomial_cdf,
    early_stopping,
    independent_share,
    quantile_interval,
)
from bench.load.scenarios.base import TIMELINE_WINDOW_S
from bench.results.histogram import PERCENTILE_METHOD as PERCENTILE_METHOD
from bench.results.histogram import decode, encode, percentile

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
_LOWEST_US, _HIGHEST_US, _DIGITS = 1, 3_600_000_000, 3


def histogram(latencies_s: Iterable[float]) -> HdrHistogram:
    hist = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)
    for value in latencies_s:
        hist.record_value(min(max(round(value * 1e6), _LOWEST_US), _HIGHEST_US))
    return hist


def merge(encoded: Iterable[str]) -> HdrHistogram:
    """One histogram from many encoded ones (points, processes or hosts)."""
    total = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)
    for text in encoded:
        total.add(decode(text))
    return total


def percentiles_ms(hist: HdrHistogram, prefix: str) -> dict[str, float]:
    """`{prefix}_p50_ms ... {prefix}_p999_ms, {prefix}_max_ms` (NaN when empty)."""
    empty = hist.get_total_count() == 0
    row = {
        f"{prefix}_{name}_ms": np.nan if empty else hist.get_value_at_percentile(q) / 1000.0
        for name, q in PERCENTILES.items()
    }
    row[f"{prefix}_max_ms"] = np.nan if empty else hist.get_max_value() / 1000.0
    row[f"{prefix}_mean_ms"] = np.nan if empty else hist.get_mean_value() / 1000.0
    return row


def _spread(values: list[float]) -> float:
    """(max - min) / median: how far apart the windows are, relative to a typical one."""
    finite = [v for v in values if np.isfinite(v)]
    if len(finite) < len(values) or not finite or np.median(finite) == 0:
        return np.nan
    return float((max(finite) - min(finite)) / np.median(finite))


def summarize(
    m: Measurement,
    n_windows: int,
    late_send_s: float,
    batch_size: int,
    confidence: float = CONFIDENCE,
    timeline_s: float = TIMELINE_WINDOW_S,
) -> dict:
    """Every metric of one load point, as a flat dict of result columns; bounds at
    `confidence` (the scenario's), its time series in windows of `timeline_s`."""
    cols = m.log.columns()
    intended, sent, done, ok = cols["intended"], cols["sent"], cols["done"], cols["ok"]
    # Requests meant for the measured window, whenever they finished: excluding the slow
    # stragglers would hide a backlog. Warm-up requests are left out.
    measured = (intended >= m.window_start) & (intended <= m.window_end)
    good = measured & ok
    errors = int((measured & ~ok).sum())
    length = m.window_end - m.window_start
    finished_in_window = good & (done >= m.window_start) & (done <= m.window_end)
    completed = int(finished_in_window.sum())
    latency = done[good] - intended[good]
    sent_latency = done[good] - sent[good]
    lat_hist, sent_hist = histogram(latency), histogram(sent_latency)

    row: dict = {
        "requests": int(measured.sum()),
        "completed": completed,
        "errors": errors,
        "window_s": length,
        "achieved_qps": completed / length if length > 0 else np.nan,
        "achieved_samples_per_s": completed * batch_size / length if length > 0 else np.nan,
        **lateness(cols, measured, late_send_s),
        "connections_limit": np.nan if m.connections is None else m.connections,
        "sender_real_time": m.sender_real_time,
        **percentiles_ms(lat_hist, "latency"),
        **percentiles_ms(sent_hist, "sent_latency"),
        **_early_stopping(latency, confidence),
        "latency_hist": encode(lat_hist),
        "sent_latency_hist": encode(sent_hist),
        "server_queue_p50_ms": _pct_ms(cols["queue_s"][good], 50),
        "server_queue_p99_ms": _pct_ms(cols["queue_s"][good], 99),
        "server_compute_p50_ms": _pct_ms(cols["compute_s"][good], 50),
        "server_compute_p99_ms": _pct_ms(cols["compute_s"][good], 99),
        **_cache(cols["cache_hit"][good], latency, cols["compute_s"][good]),
    }
    row.update(_windows(m, done, intended, good, n_windows, late_send_s))
    row.update(timeline(m, timeline_s))
    return row


def timeline(m: Measurement, window_s: float) -> dict:
    """The point over time, in windows of `window_s` from the measured window's start (the last
    one shorter where the window ends inside it): per window, its start (seconds), the rate
    offered (requests meant to go in it), the throughput (completions in it), p50 and p99 latency
    from the intended send of the requests meant to go in it, and their errors."""
    cols = m.log.columns()
    intended, done, ok = cols["intended"], cols["done"], cols["ok"]
    starts = np.arange(m.window_start, m.window_end, window_s)
    series: dict[str, list[float]] = {
        name: [] for name in ("start_s", "offered_qps", "qps", "p50_ms", "p99_ms", "errors")
    }
    for lo in starts:
        hi = min(lo + window_s, m.window_end)
        meant = (intended >= lo) & (intended < hi)
        latency = done[meant & ok] - intended[meant & ok]
        series["start_s"].append(float(lo - m.window_start))
        series["offered_qps"].append(float(meant.sum() / (hi - lo)))
        series["qps"].append(float((ok & (done >= lo) & (done < hi)).sum() / (hi - lo)))
        series["p50_ms"].append(percentile(latency, 50) * 1e3)
        series["p99_ms"].append(percentile(latency, 99) * 1e3)
        series["errors"].append(float((meant & ~ok).sum()))
    return {"timeline_window_s": window_s, **{f"timeline_{k}": v for k, v in series.items()}}


def _cache(hit: np.ndarray, latency_s: np.ndarray, compute_s: np.ndarray) -> dict:
    """With a response cache: the share of requests it answered, and the latency (from the
    intended send) and server compute of its hits and of its misses apart; NaN without one."""
    marked = np.isfinite(hit)
    hits, misses = marked & (hit == 1), marked & (hit == 0)
    row: dict = {"cache_hit_ratio": hits.sum() / marked.sum() if marked.any() else np.nan}
    for name, which in (("hit", hits), ("miss", misses)):
        for q in (50, 99):
            row[f"cache_{name}_latency_p{q}_ms"] = _pct_ms(latency_s[which], q)
        row[f"cache_{name}_compute_p50_ms"] = _pct_ms(compute_s[which], 50)
    return row


def _pct_ms(values: np.ndarray, q: float) -> float:
    return percentile(values[np.isfinite(values)], q) * 1e3


def _early_stopping(latency_s: np.ndarray, confidence: float) -> dict:
    """Per reported percentile: its upper bound at `confidence` (NaN with too few requests)
    and how many more requests a bound needs."""
    ordered = np.sort(latency_s) * 1e3
    row: dict = {"early_stopping_confidence": confidence}
    for name, q in PERCENTILES.items():
        found = early_stopping(ordered, q / 100.0, confidence)
        row[f"latency_{name}_bound_ms"] = found["bound"]
        row[f"latency_{name}_more_needed"] = found["more_needed"]
    return row


# Each window's percentile is compared through its 90% order-statistic interval. In a simulation
# of three steady windows of lognormal latencies (sigma 0.5, 300 trials each), 60 requests a
# window: p50 flagged 0.3% of steady points and caught a 1.5x shift of one window 79% of the
# time; 500 a window: p99 flagged 1% and caught 70%, p50 caught every one. The one-standard-error
# bounds used before clipped at the largest sample, so a 60-request window's p99 interval was
# [second largest, largest] where the true p99 lies above the largest 55% of the time: steady
# points were called unstable.
WINDOW_CONFIDENCE = 0.90
# The percentiles compared across windows (each only where every window can bound it).
WINDOW_PERCENTILES = {"p50": 0.50, "p99": 0.99}


def _spread_beyond_noise(
    values: list[float], bounds: list[tuple[float, float]], resolution: float
) -> float:
    """How far apart the windows' values are once each window's own sampling noise is allowed
    for: (highest lower bound - lowest upper bound) / max(median value, `resolution`), 0 where
    the intervals meet; NaN where a window cannot bound its value on both sides (too few
    requests to compare).

    A percentile from a few hundred requests rests on a handful of them; two windows of a
    perfectly steady system differ by more than 10% routinely. Only a gap that noise cannot
    explain says the system changed during the point. And a gap is measured against what the
    harness can resolve (`resolution`, the late-send tolerance, in the values' unit): with tens
    of thousands of requests a window, a 0.2 ms p50 moving 20 us is real but no drift the
    harness's own timing could stand behind, since it counts a send late only beyond that."""
    if not bounds or len(bounds) < len(values) or not np.all(np.isfinite(values)):
        return np.nan
    if not all(np.isfinite(lo) and np.isfinite(hi) for lo, hi in bounds):
        return np.nan
    gap = max(lo for lo, _ in bounds) - min(hi for _, hi in bounds)
    return float(max(gap, 0.0) / max(float(np.median(values)), resolution))


def _counts_beyond_noise(counts: list[int]) -> float:
    """How far the windows' completion counts fall outside what steady arrivals give: under a
    constant rate, each of k equal windows holds Bin(total, 1/k) of the completions; the
    largest distance of a count outside that binomial's central WINDOW_CONFIDENCE range, over
    the expected count. 0 within noise; NaN with no completions."""
    total, k = int(sum(counts)), len(counts)
    if total == 0 or k == 0:
        return np.nan
    cdf = binomial_cdf(total, 1.0 / k)
    tail = (1.0 - WINDOW_CONFIDENCE) / 2.0
    lo = int(np.searchsorted(cdf, tail))  # the smallest count with P(<= count) >= tail
    hi = int(np.searchsorted(cdf, 1.0 - tail))
    outside = max(max(lo - c, c - hi, 0) for c in counts)
    return float(outside / (total / k))


def _windows(
    m: Measurement,
    done: np.ndarray,
    intended: np.ndarray,
    good: np.ndarray,
    n: int,
    resolution_s: float,
) -> dict:
    """Throughput and p50/p99 latency in `n` equal slices of the window, by completion time,
    and how far apart the slices are beyond their sampling noise, a latency gap measured
    against at least `resolution_s` (see `_spread_beyond_noise`)."""
    edges = np.linspace(m.window_start, m.window_end, n + 1)
    counts: list[int] = []
    qps: list[float] = []
    values: dict[str, list[float]] = {name: [] for name in WINDOW_PERCENTILES}
    bounds: dict[str, list[tuple[float, float]]] = {name: [] for name in WINDOW_PERCENTILES}
    for lo, hi in pairwise(edges):
        in_slice = good & (done >= lo) & (done < hi)
        counts.append(int(in_slice.sum()))
        qps.append(float(in_slice.sum() / (hi - lo)) if hi > lo else np.nan)
        sent_order = (done[in_slice] - intended[in_slice]) * 1e3  # the log is in send order
        lat = np.sort(sent_order)
        hist = histogram(lat / 1e3)
        for name, q in WINDOW_PERCENTILES.items():
            if len(lat):
                value = hist.get_value_at_percentile(q * 100) / 1000.0
                share = independent_share(sent_order <= value)
                values[name].append(value)
                bounds[name].append(quantile_interval(lat, q, WINDOW_CONFIDENCE, share))
            else:
                values[name].append(np.nan)
    row: dict = {
        "window_requests": counts,
        "window_qps": qps,
        "window_qps_spread": _spread(qps),
        "window_qps_spread_beyond_noise": _counts_beyond_noise(counts),
        "window_confidence": WINDOW_CONFIDENCE,
    }
    for name in WINDOW_PERCENTILES:
        row[f"window_{name}_ms"] = values[name]
        row[f"window_{name}_spread"] = _spread(values[name])
        row[f"window_{name}_spread_beyond_noise"] = _spread_beyond_noise(
            values[name], bounds[name], resolution_s * 1e3
        )
    return row
