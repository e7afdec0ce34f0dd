"""Intended send times, made before any request is sent (schedule, issue and record stay apart)."""

from __future__ import annotations

import numpy as np


def poisson_offsets(rate_qps: float, duration_s: float, seed: int) -> np.ndarray:
    """Send offsets (seconds from the start) of a seeded Poisson process over `duration_s`."""
    rng = np.random.default_rng(seed)
    # Draw a little more than expected, then top up: the count itself is random.
    expected = rate_qps * duration_s
    gaps = rng.exponential(1.0 / rate_qps, size=int(expected + 6 * np.sqrt(expected) + 16))
    offsets = np.cumsum(gaps)
    while offsets[-1] < duration_s:
        more = np.cumsum(rng.exponential(1.0 / rate_qps, size=len(gaps))) + offsets[-1]
        offsets = np.concatenate([offsets, more])
    return offsets[offsets < duration_s]


def intermittent_offsets(gap_s: float, jitter: float, duration_s: float, seed: int) -> np.ndarray:
    """Send offsets of one request every `gap_s`, each gap drawn uniformly within
    +-`jitter` x `gap_s` (seeded); the first request goes at 0."""
    rng = np.random.default_rng(seed)
    count = int(duration_s / (gap_s * (1.0 - jitter))) + 1  # enough even if every gap is short
    gaps = gap_s * (1.0 + jitter * rng.uniform(-1.0, 1.0, size=count - 1))
    offsets = np.concatenate([[0.0], np.cumsum(gaps)])
    return offsets[offsets < duration_s]


def bursty_offsets(
    burst_size: int, burst_qps: float, idle_s: float, duration_s: float, seed: int
) -> np.ndarray:
    """Send offsets of bursts of `burst_size` requests, Poisson at `burst_qps` within a burst
    (seeded), each burst starting `idle_s` after the previous one's last request; the first
    burst starts at 0."""
    if idle_s <= 0:
        raise ValueError(f"idle_s: must be > 0 (bursts need a gap between them), got {idle_s}")
    rng = np.random.default_rng(seed)
    bursts, start = [], 0.0
    while start < duration_s:
        gaps = rng.exponential(1.0 / burst_qps, size=burst_size - 1)
        burst = start + np.concatenate([[0.0], np.cumsum(gaps)])
        bursts.append(burst)
        start = burst[-1] + idle_s
    offsets = np.concatenate(bursts)
    return offsets[offsets < duration_s]
