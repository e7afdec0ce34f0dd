"""Sampling error of a load point's figures, distribution-free: a binomial bound for a share
(how many sends were late) and order-statistic bounds for a percentile (MLPerf LoadGen's early
stopping). Pure functions over counts and sorted samples.

A percentile from n samples is an order statistic; whether the true percentile lies below the
k-th smallest sample is a binomial question (how many of n draws fall below it), whatever the
latency distribution. So a bound needs no model of the latencies, only enough of them: p99's
upper bound at 99% confidence needs 459 samples, whatever their values.
"""

from __future__ import annotations

import math

import numpy as np

# The confidence every bound of a point is stated at, as LoadGen's early stopping (99%).
CONFIDENCE = 0.99


def binomial_cdf(n: int, p: float) -> np.ndarray:
    """P(Bin(n, p) <= k) for k = 0..n (exact, in log space: no overflow for large n)."""
    if p <= 0.0:
        return np.ones(n + 1)
    if p >= 1.0:
        return np.r_[np.zeros(n), 1.0]
    k = np.arange(n + 1)
    # log C(n, k) + k log p + (n - k) log(1 - p), built by the ratio of consecutive terms.
    steps = np.log((n - k[:-1]) / (k[:-1] + 1.0)) + math.log(p / (1.0 - p))
    log_pmf = np.r_[n * math.log1p(-p), n * math.log1p(-p) + np.cumsum(steps)]
    return np.minimum(np.cumsum(np.exp(log_pmf)), 1.0)


def share_significantly_over(count: int, n: int, limit: float, confidence: float) -> bool:
    """Whether `count` events in `n` trials show, at `confidence`, a rate above `limit`: the
    chance of `count` or more at exactly `limit` is below 1 - confidence."""
    if n <= 0 or count <= 0:
        return False
    at_least = 1.0 - (binomial_cdf(n, limit)[count - 1])
    return bool(at_least < 1.0 - confidence)


def min_samples_to_bound(q: float, confidence: float) -> int:
    """The fewest samples whose largest bounds the q-quantile from above at `confidence`:
    the n with q^n <= 1 - confidence (p99 at 99%: 459; LoadGen's early-stopping minimum with
    no sample over the target)."""
    return math.ceil(math.log(1.0 - confidence) / math.log(q) - 1e-9)


def upper_rank(n: int, q: float, confidence: float) -> int | None:
    """The 1-based rank k of the smallest order statistic X(k) of n samples with
    P(X(k) >= true q-quantile) >= confidence; None when n is too few for any."""
    if n <= 0:
        return None
    # X(k) < quantile exactly when k or more samples fall below it: P(Bin(n, q) >= k).
    below_at_least = 1.0 - np.r_[0.0, binomial_cdf(n, q)[:-1]]  # index k: P(Bin >= k)
    ranks = np.nonzero(below_at_least <= 1.0 - confidence)[0]
    ranks = ranks[ranks >= 1]
    return int(ranks[0]) if len(ranks) else None


def lower_rank(n: int, q: float, confidence: float) -> int | None:
    """The 1-based rank k of the largest order statistic X(k) with P(X(k) <= true q-quantile)
    >= confidence; None when n is too few for any."""
    if n <= 0:
        return None
    # X(k) > quantile exactly when fewer than k samples fall below it: P(Bin(n, q) <= k - 1).
    cdf = binomial_cdf(n, q)
    ranks = np.nonzero(cdf[:n] <= 1.0 - confidence)[0] + 1  # index j: rank j + 1
    return int(ranks[-1]) if len(ranks) else None


def quantile_interval(
    sorted_values: np.ndarray, q: float, confidence: float, share: float = 1.0
) -> tuple[float, float]:
    """A two-sided distribution-free interval for the q-quantile at `confidence`: order
    statistics with (1 - confidence) / 2 of chance on each side. A side too few samples can
    bound is -inf or +inf (60 samples cannot bound p99 from above at any useful confidence:
    their largest is below the true p99 45% of the time). `share`: what each sample is worth
    in independent ones (`independent_share`); the interval is that of n * share independent
    samples, its ranks read at the same levels of these n."""
    n = len(sorted_values)
    worth = max(1, math.floor(n * share))
    one_side = 1.0 - (1.0 - confidence) / 2.0
    lo, hi = lower_rank(worth, q, one_side), upper_rank(worth, q, one_side)
    return (
        float(sorted_values[max(1, math.floor(lo * n / worth)) - 1]) if lo else -math.inf,
        float(sorted_values[min(n, math.ceil(hi * n / worth)) - 1]) if hi else math.inf,
    )


# Batch means need this many batches for their variance to say anything.
_MIN_BATCHES = 8


def independent_share(below: np.ndarray) -> float:
    """What each value of a series is worth in independent ones, for a quantile: 1 when they
    are independent, less when they come in runs. `below`: whether each value (in the order
    the requests were sent) is at or below the quantile. The batch-means estimate: the
    variance of `below`'s means over batches of sqrt(n) consecutive values, against the
    binomial variance independent values would give their means.

    A queue's latencies come in runs (every request of a busy period waits long, and a stall
    delays all it holds up), so a window of n requests bounds a percentile only as well as
    fewer independent ones would: at 80% load a window's p50 moved 20-30% between windows of
    a steady point, far outside intervals that took its requests as independent."""
    n = len(below)
    size = max(1, math.isqrt(n))
    batches = n // size
    p = float(np.mean(below)) if n else 0.0
    if batches < _MIN_BATCHES or p <= 0.0 or p >= 1.0:
        return 1.0
    means = np.asarray(below[: batches * size], dtype=float).reshape(batches, size).mean(axis=1)
    inflation = size * float(means.var(ddof=1)) / (p * (1.0 - p))
    return 1.0 if inflation <= 1.0 else 1.0 / inflation


def early_stopping(sorted_values: np.ndarray, q: float, confidence: float) -> dict:
    """LoadGen's early-stopping estimate of the q-quantile: the smallest order statistic that
    bounds it from above at `confidence` (NaN when too few), and how many more samples a bound
    needs (0 once it has one)."""
    n = len(sorted_values)
    rank = upper_rank(n, q, confidence)
    return {
        "bound": float(sorted_values[rank - 1]) if rank is not None else math.nan,
        "more_needed": max(0, min_samples_to_bound(q, confidence) - n),
    }
