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
