"""Verdicts on the changes between two runs' matched points, and the gate: pure functions
from the two sides' samples and rows to `Change`s.

A change is stated as the candidate's figure against the baseline's, candidate / baseline - 1,
with its confidence interval; its `regression` is the same change signed so that positive is
worse (latency and memory up, throughput and accuracy down). With the interval of the
regression [lo, hi] and the gate's `same_within` margin m:

    slower  lo > m          the whole interval is worse by more than the margin
    faster  hi < -m         the whole interval is better by more than the margin
    same    -m <= lo, hi <= m
    unsure  otherwise       the measurement cannot tell (run longer, or on a quieter host)

A gated metric fails the gate when lo exceeds its threshold: worse beyond it, with confidence
(and beyond m: a change the verdict calls same or unsure never fails it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import pandas as pd

from bench.compare.gate import GateConfig
from bench.compare.stats import PointSamples, estimate, range_interval, ratio_interval, resample


class Verdict(str, Enum):
    FASTER = "faster"
    SLOWER = "slower"
    SAME = "same"
    UNSURE = "unsure"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Change:
    """One metric of one point (or one configuration), baseline against candidate."""

    metric: str
    unit: str
    baseline: float
    candidate: float
    # Interval of candidate / baseline - 1 at the gate's confidence.
    low: float
    high: float
    worse_when: str  # "higher" or "lower"
    verdict: Verdict
    method: str
    threshold: float | None = None  # the gate's, as a regression; None: not gated
    fails: bool = False  # regressed beyond the threshold with confidence
    # How `faster` and `slower` read for this metric ("smaller"/"larger" memory).
    words: tuple[str, str] = ("faster", "slower")

    @property
    def regression(self) -> tuple[float, float]:
        """The interval of the change signed so that positive is worse."""
        if self.worse_when == "higher":
            return self.low, self.high
        return -self.high, -self.low

    @property
    def word(self) -> str:
        if self.verdict is Verdict.FASTER:
            return self.words[0]
        if self.verdict is Verdict.SLOWER:
            return self.words[1]
        return str(self.verdict)


def verdict_of(regression: tuple[float, float], margin: float) -> Verdict:
    """The verdict on a regression interval (positive: worse) given the `same` margin."""
    low, high = regression
    if not (math.isfinite(low) and math.isfinite(high)):
        return Verdict.UNSURE
    if low > margin:
        return Verdict.SLOWER
    if high < -margin:
        return Verdict.FASTER
    if -margin <= low and high <= margin:
        return Verdict.SAME
    return Verdict.UNSURE


def judged(change: Change, gate: GateConfig, threshold: float | None) -> Change:
    """`change` with its verdict, its threshold and whether it fails the gate."""
    regression = change.regression
    return Change(
        **{
            **change.__dict__,
            "verdict": verdict_of(regression, gate.same_within),
            "threshold": threshold,
            # Never on a change the verdict calls same or unsure: a threshold below the margin
            # acts as the margin.
            "fails": threshold is not None
            and math.isfinite(regression[0])
            and regression[0] > max(threshold, gate.same_within),
        }
    )


BOOTSTRAP = "block bootstrap of per-request samples"


def speed_changes(
    baseline: PointSamples,
    candidate: PointSamples,
    gate: GateConfig,
    seed: int,
) -> list[Change]:
    """p50 and p99 latency (from the intended send) and achieved throughput; where both sides
    streamed tokens, also p99 TTFT and TPOT (gated as p99 latency), output tokens per second
    and, where the candidate's scenario set TTFT or TPOT SLOs, goodput at them (both gated as
    throughput)."""
    rng = np.random.default_rng(seed)
    quantiles = (50.0, 99.0)
    before = resample(baseline, quantiles, gate.resamples, rng)
    after = resample(candidate, quantiles, gate.resamples, rng)
    whole_before, whole_after = estimate(baseline, quantiles), estimate(candidate, quantiles)
    changes = []
    for name, label, unit, scale, worse, threshold in (
        ("p50", "p50 latency", "ms", 1e3, "higher", gate.max_p50_regression),
        ("p99", "p99 latency", "ms", 1e3, "higher", gate.max_p99_regression),
        ("rate", "throughput", "req/s", 1.0, "lower", gate.max_throughput_regression),
        ("ttft_p99", "TTFT p99", "ms", 1e3, "higher", gate.max_p99_regression),
        ("tpot_p99", "TPOT p99", "ms", 1e3, "higher", gate.max_p99_regression),
        ("output_tokens_per_s", "output tokens/s", "tok/s", 1.0, "lower",
         gate.max_throughput_regression),
        ("goodput", "goodput", "req/s", 1.0, "lower", gate.max_throughput_regression),
    ):  # fmt: skip
        if name not in before or name not in after:
            continue  # a generative figure where one side streamed no tokens (or had no SLO)
        low, high = ratio_interval(before[name], after[name], gate.confidence)
        change = Change(
            metric=label,
            unit=unit,
            baseline=whole_before[name] * scale,
            candidate=whole_after[name] * scale,
            low=low,
            high=high,
            worse_when=worse,
            verdict=Verdict.UNSURE,
            method=BOOTSTRAP,
        )
        changes.append(judged(change, gate, threshold))
    return changes


def memory_change(baseline: np.ndarray, candidate: np.ndarray, gate: GateConfig) -> Change:
    """Peak RSS, with bounds from each window's RSS samples (unsure where none were stored)."""
    low, high = range_interval(baseline, candidate)

    def peak(samples: np.ndarray) -> float:
        return float(samples.max()) if len(samples) else np.nan

    change = Change(
        metric="peak memory",
        unit="MB",
        baseline=peak(baseline),
        candidate=peak(candidate),
        low=low,
        high=high,
        worse_when="higher",
        verdict=Verdict.UNSURE,
        method="range of the window's RSS samples",
        words=("smaller", "larger"),
    )
    return judged(change, gate, gate.max_memory_regression)


def accuracy_change(baseline: pd.Series, candidate: pd.Series, gate: GateConfig) -> Change | None:
    """Accuracy against each model's fp32 reference: top-1 agreement (or, for embeddings, the
    lowest cosine similarity) on the same fixed evaluation inputs in both runs, so the
    comparison is paired and has no sampling noise between the runs: the interval is the
    point itself. None where neither run measured it. `gate.min_accuracy` is a floor on the
    candidate's value."""
    measured = [
        (label, baseline.get(column, np.nan), candidate.get(column, np.nan))
        for column, label in (
            ("accuracy_top1_agreement", "top-1 agreement"),
            ("accuracy_cosine_min", "cosine similarity (min)"),
        )
        if pd.notna(baseline.get(column, np.nan)) or pd.notna(candidate.get(column, np.nan))
    ]
    if not measured:
        return None
    label, before, after = measured[0]
    before, after = float(before), float(after)
    change = after / before - 1.0 if before else np.nan
    verdict = Verdict.UNSURE
    if math.isfinite(change):
        verdict = (
            Verdict.SAME
            if abs(after - before) <= 1e-9
            else Verdict.FASTER
            if after > before
            else Verdict.SLOWER
        )
    floor = gate.min_accuracy
    return Change(
        metric=label,
        unit="",
        baseline=before,
        candidate=after,
        low=change,
        high=change,
        worse_when="lower",
        verdict=verdict,
        method="same evaluation inputs (paired, exact)",
        threshold=floor,
        fails=floor is not None and math.isfinite(after) and after < floor,
        words=("better", "worse"),
    )


def slo_throughput(
    points: list[PointSamples],
    slo_s: float,
    quantile: float,
    resamples: int,
    rng: np.random.Generator,
) -> tuple[float, np.ndarray]:
    """The throughput at the SLO of one configuration's valid points: the highest achieved
    rate among the points whose `quantile` latency meets `slo_s` (0 where none does), from
    the whole samples and per block-bootstrap resample."""
    whole, draws = 0.0, np.zeros(resamples)
    name = f"p{quantile:g}"
    for samples in points:
        full = estimate(samples, (quantile,))
        if full[name] <= slo_s:
            whole = max(whole, full["rate"])
        drawn = resample(samples, (quantile,), resamples, rng)
        draws = np.where(drawn[name] <= slo_s, np.maximum(draws, drawn["rate"]), draws)
    return whole, draws


def slo_change(
    baseline: list[PointSamples],
    candidate: list[PointSamples],
    slo_ms: float,
    quantile: float,
    gate: GateConfig,
    rng: np.random.Generator,
) -> Change:
    """Throughput at the SLO of one configuration, each side from its own valid points."""
    (whole_before, before), (whole_after, after) = (
        slo_throughput(points, slo_ms / 1e3, quantile, gate.resamples, rng)
        for points in (baseline, candidate)
    )
    low, high = ratio_interval(before, after, gate.confidence)
    change = Change(
        metric=f"throughput at p{quantile:g} <= {slo_ms:g} ms",
        unit="req/s",
        baseline=whole_before,
        candidate=whole_after,
        low=low,
        high=high,
        worse_when="lower",
        verdict=Verdict.UNSURE,
        method=BOOTSTRAP,
    )
    return judged(change, gate, gate.max_throughput_regression)


@dataclass
class PointComparison:
    """One matched point: its label, each side's verdict on its own validity, its changes."""

    label: str
    baseline_valid: bool
    candidate_valid: bool
    baseline_reasons: str
    candidate_reasons: str
    changes: list[Change] = field(default_factory=list)
    gated: bool = True  # False: left out of the gate (an invalid point with gate.invalid=skip)

    @property
    def valid(self) -> bool:
        return self.baseline_valid and self.candidate_valid

    @property
    def verdict(self) -> Verdict:
        """slower if any metric is worse, else unsure if any cannot tell, else faster if any
        is better, else same."""
        verdicts = {c.verdict for c in self.changes}
        for verdict in (Verdict.SLOWER, Verdict.UNSURE, Verdict.FASTER):
            if verdict in verdicts:
                return verdict
        return Verdict.SAME if verdicts else Verdict.UNSURE

    def invalid_text(self) -> str:
        said = []
        if not self.baseline_valid:
            said.append(f"INVALID in the baseline: {self.baseline_reasons}")
        if not self.candidate_valid:
            said.append(f"INVALID in the candidate: {self.candidate_reasons}")
        return "; ".join(said)
