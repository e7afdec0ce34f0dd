"""Sampling error of a change between two runs, from their stored per-request samples: a
block bootstrap (pure numpy, seeded).

Requests next to each other in time share the host's state (a noisy neighbour, a GC pause, a
frequency step), so they are not independent draws: resampling single requests would
understate the noise and raise false alarms. Each run's measured window is cut into equal time
blocks, and a resample draws whole blocks with replacement (a block bootstrap), so a slow
stretch of the run weighs in as a stretch. Each resample of a run gives its latency percentiles
(nearest rank, as the results' own) and its throughput (completions per second); the two
runs are resampled independently and the change is read from the ratio of their resamples.

A generative point's resamples also give, from the same blocks, the percentiles of its time to
first token and time per output token (blocked by intended send, like latency), its output
tokens per second and its goodput (the completions' tokens, and the completions meeting the
SLOs, per second, blocked by completion, like throughput), as `bench.load.generation_stats`
computes them for the point's row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Time blocks per run: enough that a resample varies, long enough (a 10 s run: 0.5 s each) to
# hold a stretch of correlated requests.
BLOCKS = 20


@dataclass(frozen=True)
class Tokens:
    """A generative point's samples beside its requests': per request answered in the window
    (as `PointSamples.latency_s`), its time to first token and time per output token, seconds
    (NaN where it has none: no token, or one); per completion inside the window (as
    `PointSamples.done_s`), its output tokens and whether it met the SLOs compared at (None:
    no SLO, no goodput)."""

    ttft_s: np.ndarray
    tpot_s: np.ndarray
    done_tokens: np.ndarray
    done_meets: np.ndarray | None = None


@dataclass(frozen=True)
class PointSamples:
    """One point's stored samples: each request answered in the measured window (latency from
    its intended send, seconds, and when it was meant to be sent), each completion inside the
    window, and the window; a generative point's token samples (None for others)."""

    latency_s: np.ndarray
    intended_s: np.ndarray
    done_s: np.ndarray
    window_start_s: float
    window_end_s: float
    tokens: Tokens | None = None


def _per_request(samples: PointSamples) -> dict[str, np.ndarray]:
    """The per-request series whose percentiles are taken: latency (`p<q>`), and a generative
    point's TTFT and TPOT (`ttft_p<q>`, `tpot_p<q>`), without the requests that have none."""
    series = {"": samples.latency_s}
    if samples.tokens is not None:
        series |= {"ttft_": samples.tokens.ttft_s, "tpot_": samples.tokens.tpot_s}
    return series


def _per_completion(samples: PointSamples) -> dict[str, np.ndarray]:
    """The weight each completion adds to a per-second figure: 1 (`rate`); a generative
    point's output tokens (`output_tokens_per_s`) and 1 where it met the SLOs (`goodput`)."""
    weights = {"rate": np.ones(len(samples.done_s))}
    if samples.tokens is not None:
        weights["output_tokens_per_s"] = samples.tokens.done_tokens.astype(float)
        if samples.tokens.done_meets is not None:
            weights["goodput"] = samples.tokens.done_meets.astype(float)
    return weights


def _blocks(
    samples: PointSamples, blocks: int
) -> tuple[dict[str, list[np.ndarray]], dict[str, np.ndarray]]:
    """Per series of `_per_request`, each block's values (by intended time, NaNs dropped); per
    weight of `_per_completion`, each block's sum (by done time)."""
    edges = np.linspace(samples.window_start_s, samples.window_end_s, blocks + 1)
    by_intent = np.clip(np.searchsorted(edges, samples.intended_s, "right") - 1, 0, blocks - 1)
    by_done = np.clip(np.searchsorted(edges, samples.done_s, "right") - 1, 0, blocks - 1)
    values = {
        name: [v[(by_intent == b) & ~np.isnan(v)] for b in range(blocks)]
        for name, v in _per_request(samples).items()
    }
    sums = {
        name: np.bincount(by_done, weights=w, minlength=blocks)
        for name, w in _per_completion(samples).items()
    }
    return values, sums


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
    `percentiles` (seconds) and `rate` (completions per second); for a generative point also
    `ttft_p<q>`, `tpot_p<q>` (seconds), `output_tokens_per_s` and, with SLOs, `goodput`
    (completions meeting them per second)."""
    values, sums = _blocks(samples, blocks)
    length = samples.window_end_s - samples.window_start_s
    drawn = rng.integers(0, blocks, size=(resamples, blocks))
    out = {f"{name}p{q:g}": np.empty(resamples) for name in values for q in percentiles}
    for i, chosen in enumerate(drawn):
        for name, per_block in values.items():
            pooled = np.sort(np.concatenate([per_block[b] for b in chosen]))
            for q in percentiles:
                out[f"{name}p{q:g}"][i] = _nearest_rank(pooled, q)
    for name, per_block in sums.items():
        out[name] = per_block[drawn].sum(axis=1) / length
    return out


def estimate(samples: PointSamples, percentiles: tuple[float, ...]) -> dict[str, float]:
    """The same figures from the whole sample (what the resamples vary around)."""
    out = {}
    for name, series in _per_request(samples).items():
        ordered = np.sort(series[~np.isnan(series)])
        out |= {f"{name}p{q:g}": _nearest_rank(ordered, q) for q in percentiles}
    length = samples.window_end_s - samples.window_start_s
    out |= {name: float(w.sum()) / length for name, w in _per_completion(samples).items()}
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
