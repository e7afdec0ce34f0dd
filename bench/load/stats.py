"""Statistics of one load point, from its request log: pure functions, no clocks.

Percentile method: HdrHistogram with 3 significant digits over microseconds. pX is the
smallest recorded value v with at least X% of values <= v, reported as the highest value
equivalent to v's bucket (relative error <= 0.1%). Histograms are stored encoded, so points,
processes and hosts can be merged later and percentiles recomputed exactly as here.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

import numpy as np
from hdrh.histogram import HdrHistogram

from bench.load.lateness import lateness
from bench.load.log import Measurement
from bench.results.histogram import PERCENTILE_METHOD as PERCENTILE_METHOD
from bench.results.histogram import decode, encode

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


def summarize(m: Measurement, n_windows: int, late_send_s: float, batch_size: int) -> dict:
    """Every metric of one load point, as a flat dict of result columns."""
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
        **percentiles_ms(lat_hist, "latency"),
        **percentiles_ms(sent_hist, "sent_latency"),
        "latency_hist": encode(lat_hist),
        "sent_latency_hist": encode(sent_hist),
        "server_queue_p50_ms": _pct_ms(cols["queue_s"][good], 50),
        "server_queue_p99_ms": _pct_ms(cols["queue_s"][good], 99),
        "server_compute_p50_ms": _pct_ms(cols["compute_s"][good], 50),
        "server_compute_p99_ms": _pct_ms(cols["compute_s"][good], 99),
    }
    window_qps, window_p99, bounds = _windows(m, done, intended, good, n_windows)
    row["window_qps"] = window_qps
    row["window_p99_ms"] = window_p99
    row["window_qps_spread"] = _spread(window_qps)
    row["window_p99_spread"] = _spread(window_p99)
    row["window_p99_spread_beyond_noise"] = _spread_beyond_noise(window_p99, bounds)
    return row


def _pct_ms(values: np.ndarray, q: float) -> float:
    values = values[np.isfinite(values)]
    return float(np.percentile(values, q) * 1e3) if len(values) else np.nan


# One standard error: in a simulation of three steady windows of 500 lognormal latencies, the
# raw 10% rule flagged 64% of them as unstable; with these bounds 1.3% were, while a 1.5x shift
# of one window was caught 81% of the time and a 2x shift always (300 trials each).
_P99_Z = 1.0


def quantile_bounds(sorted_values: np.ndarray, q: float, z: float = _P99_Z) -> tuple[float, float]:
    """A distribution-free confidence interval for the q-quantile of a sorted sample: the
    order statistics at ranks n*q -/+ z*sqrt(n*q*(1-q)) (binomial approximation)."""
    n = len(sorted_values)
    half = z * np.sqrt(n * q * (1 - q))
    lo = int(np.clip(np.floor(n * q - half), 0, n - 1))
    hi = int(np.clip(np.ceil(n * q + half), 0, n - 1))
    return float(sorted_values[lo]), float(sorted_values[hi])


def _spread_beyond_noise(p99: list[float], bounds: list[tuple[float, float]]) -> float:
    """How far apart the windows' p99 are once each window's own sampling noise is allowed
    for: (highest lower bound - lowest upper bound) / median p99, 0 where the intervals meet.

    A p99 from a few hundred requests rests on a handful of them; two windows of a perfectly
    steady system differ by more than 10% routinely. Only a gap that noise cannot explain
    says the system changed during the point."""
    if not bounds or len(bounds) < len(p99) or not np.all(np.isfinite(p99)):
        return np.nan
    gap = max(lo for lo, _ in bounds) - min(hi for _, hi in bounds)
    return float(max(gap, 0.0) / np.median(p99))


def _windows(
    m: Measurement, done: np.ndarray, intended: np.ndarray, good: np.ndarray, n: int
) -> tuple[list[float], list[float], list[tuple[float, float]]]:
    """Throughput, p99 latency and its confidence bounds in `n` equal slices of the window,
    by completion time (milliseconds)."""
    edges = np.linspace(m.window_start, m.window_end, n + 1)
    qps, p99, bounds = [], [], []
    for lo, hi in pairwise(edges):
        in_slice = good & (done >= lo) & (done < hi)
        qps.append(float(in_slice.sum() / (hi - lo)) if hi > lo else np.nan)
        lat = np.sort(done[in_slice] - intended[in_slice]) * 1e3
        if len(lat):
            p99.append(histogram(lat / 1e3).get_value_at_percentile(99.0) / 1000.0)
            bounds.append(quantile_bounds(lat, 0.99))
        else:
            p99.append(np.nan)
    return qps, p99, bounds
