"""Sampling error of a change between two runs, from their stored per-request samples: a
block bootstrap (pure numpy, seeded).

Requests next to each other in time share the host's state (a noisy neighbour, a GC pause, a
frequency step), so they are not independent draws: resampling single requests would
understate the noise and raise false alarms. Each run's measured window is cut into equal time
blocks, and a resample draws whole blocks with replacement (a block bootstrap), so a slow
stretch of the run weighs in as a stretch. Each resample of a run gives its latency percentiles
(nearest rank, as the results' own) and its throughput (completions per second); the two
runs are resampled independently and the change is read from the ratio of their resamples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Time blocks per run: enough that a resample varies, long enough (a 10 s run: 0.5 s each) to
# hold a stretch of correlated requests.
BLOCKS = 20


@dataclass(frozen=True)
class PointSamples:
    """One point's stored samples: each request answered in the measured window (latency from
    its intended send, seconds, and when it was meant to be sent), each completion inside the
    window, and the window."""

    latency_s: np.ndarray
    intended_s: np.ndarray
    done_s: np.ndarray
    window_start_s: float
    window_end_s: float


def _blocks(samples: PointSamples, blocks: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Each block's latencies (by intended time) and its completions (by done time)."""
    edges = np.linspace(samples.window_start_s, samples.window_end_s, blocks + 1)
    by_intent = np.clip(np.searchsorted(edges, samples.intended_s, "right") - 1, 0, blocks - 1)
    by_done = np.clip(np.searchsorted(edges, samples.done_s, "right") - 1, 0, blocks - 1)
    latencies = [samples.latency_s[by_intent == b] for b in range(blocks)]
    return latencies, np.bincount(by_done, minlength=blocks).astype(float)


def _nearest_rank(ordered: np.ndarray, q: float) -> float:
    if not len(ordered):
        return np.nan
    return float(ordered[max(1, int(q / 100.0 * len(ordered) + 0.5)) - 1])


def resample(
    samples: PointSamples,
    percentiles: tuple[float, ...],
    resamples: int,
    rng: np.random.Generator,
    blocks: int = BLOCKS,
) -> dict[str, np.ndarray]:
    """`resamples` block-bootstrap replicates of the point: `p<q>` per percentile in
    `percentiles` (seconds) and `rate` (completions per second)."""
    latencies, completions = _blocks(samples, blocks)
    length = samples.window_end_s - samples.window_start_s
    drawn = rng.integers(0, blocks, size=(resamples, blocks))
    out = {f"p{q:g}": np.empty(resamples) for q in percentiles}
    for i, chosen in enumerate(drawn):
        pooled = np.sort(np.concatenate([latencies[b] for b in chosen]))
        for q in percentiles:
            out[f"p{q:g}"][i] = _nearest_rank(pooled, q)
    out["rate"] = completions[drawn].sum(axis=1) / length
    return out


def estimate(samples: PointSamples, percentiles: tuple[float, ...]) -> dict[str, float]:
    """The same figures from the whole sample (what the resamples vary around)."""
    ordered = np.sort(samples.latency_s)
    out = {f"p{q:g}": _nearest_rank(ordered, q) for q in percentiles}
    out["rate"] = len(samples.done_s) / (samples.window_end_s - samples.window_start_s)
    return out


def ratio_interval(
    baseline: np.ndarray, candidate: np.ndarray, confidence: float
) -> tuple[float, float]:
    """The percentile-bootstrap interval of candidate / baseline - 1 at `confidence`, from
    independent resamples of the two runs; (nan, nan) where a resample has no value."""
    with np.errstate(divide="ignore", invalid="ignore"):
        change = candidate / baseline - 1.0
    if not len(change) or not np.all(np.isfinite(change)):
        return np.nan, np.nan
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(change, [tail, 1.0 - tail])
    return float(low), float(high)


def range_interval(baseline: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """Bounds of the change of a peak from two runs' samples taken over their windows (RSS):
    from the candidate's lowest over the baseline's highest to the candidate's highest over
    the baseline's lowest, order statistics that hold whatever moved inside each window."""
    if not len(baseline) or not len(candidate) or baseline.min() <= 0:
        return np.nan, np.nan
    return float(candidate.min() / baseline.max() - 1.0), float(
        candidate.max() / baseline.min() - 1.0
    )
