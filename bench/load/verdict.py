"""Whether to believe a load point, MLPerf LoadGen style: VALID or INVALID, the reasons, and
what to do about them. A pure function of the point's statistics and the scenario's rules."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.config import ScenarioConfig
from bench.load.points import SPARSE


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reasons: list[str] = field(default_factory=list)
    recommendation: str = ""

    def as_row(self) -> dict:
        return {
            "valid": self.valid,
            "invalid_reasons": "; ".join(self.reasons),
            "recommendation": self.recommendation,
        }


def accuracy_metric(stats: dict) -> tuple[str, float]:
    """The accuracy a floor is judged on: top-1 agreement for classifiers, else the worst
    cosine similarity to the fp32 reference."""
    top1 = stats.get("accuracy_top1_agreement", np.nan)
    if top1 is not None and np.isfinite(top1):
        return "top-1 agreement", float(top1)
    return "cosine", float(stats.get("accuracy_cosine_min", np.nan))


def judge(stats: dict, sc: ScenarioConfig, accuracy_floor: float | None = None) -> Verdict:
    """Apply the scenario's validity rules to one point's `stats` (from `summarize`, plus the
    accuracy columns when an accuracy floor is set)."""
    reasons: list[str] = []
    advice: list[str] = []
    open_ended = sc.name == "offline"
    # A sparse schedule's windows hold a few requests each, cold or warm by design: they cannot
    # agree, and disagreeing says nothing about whether to believe the point.
    sparse = sc.name in SPARSE

    if stats["window_s"] < sc.min_duration_s or stats["completed"] < sc.min_requests:
        reasons.append(
            f"too short: {stats['window_s']:.1f} s and {stats['completed']} requests, "
            f"minimum {sc.min_duration_s:g} s and {sc.min_requests}"
        )
        advice.append(_longer(sc, stats))

    qps_spread = stats["window_qps_spread"]
    p99_spread = stats["window_p99_spread_beyond_noise"]
    unstable = []
    if not sparse and _beyond(qps_spread, sc.stability_tolerance):
        unstable.append(f"throughput differs by {qps_spread:.0%}")
    # An offline burst's latency grows by design as the queue empties: only throughput counts.
    if not (open_ended or sparse) and _beyond(p99_spread, sc.stability_tolerance):
        unstable.append(f"p99 differs by {p99_spread:.0%} beyond sampling noise")
    if unstable:
        reasons.append(
            f"unstable: across the last {sc.stability_windows} windows "
            f"{' and '.join(unstable)} (tolerance {sc.stability_tolerance:.0%})"
        )
        advice.append("run longer (scenario.duration_s) or on a quieter host")

    if not open_ended and stats["late_send_fraction"] > sc.max_late_fraction:
        reasons.append(
            f"generator fell behind: {stats['late_send_fraction']:.1%} of requests sent over "
            f"{sc.late_send_ms:g} ms late (limit {sc.max_late_fraction:.0%})"
        )
        advice.append("lower the rate or give the load generator its own cores")

    if not open_ended and stats["blocked_send_fraction"] > sc.max_late_fraction:
        reasons.append(
            f"client connections exhausted: {stats['blocked_send_fraction']:.1%} of requests "
            f"waited over {sc.late_send_ms:g} ms for a free connection, so the load was not "
            "offered as scheduled"
        )
        advice.append("lower the rate, or raise scenario.connections if clients really have more")

    if stats["errors"]:
        reasons.append(f"errors: {stats['errors']} of {stats['requests']} requests failed")
        advice.append("see the errors column and the run log")

    if accuracy_floor is not None:
        name, value = accuracy_metric(stats)
        if not value >= accuracy_floor:
            reasons.append(f"accuracy below floor: {name} {value:.4f} < {accuracy_floor:g}")
            advice.append("choose a less aggressive optimization, or lower accuracy_floor")

    if sc.slo_ms is not None:
        observed = stats.get(f"latency_{sc.slo_percentile}_ms", np.nan)
        if not observed <= sc.slo_ms:
            reasons.append(f"SLO missed: {sc.slo_percentile} {observed:.1f} ms > {sc.slo_ms:g} ms")
            advice.append("lower the load, batch, add workers, or choose a faster configuration")

    return Verdict(
        valid=not reasons,
        reasons=reasons,
        recommendation="; ".join(dict.fromkeys(advice)) if advice else "none: the point is valid",
    )


def _beyond(spread: float, tolerance: float) -> bool:
    # A spread that cannot be computed (an empty window) is itself a sign of instability.
    return not np.isfinite(spread) or spread > tolerance


def _longer(sc: ScenarioConfig, stats: dict) -> str:
    needed = sc.min_duration_s
    rate = stats["achieved_qps"]
    if rate and np.isfinite(rate) and rate > 0:
        needed = max(needed, sc.min_requests / rate)
    return f"run longer: scenario.duration_s >= {needed * 1.2:.0f}"


def describe_rules(sc: ScenarioConfig, accuracy_floor: float | None = None) -> list[str]:
    """The rules `judge` applies under `sc`, in words, for reports."""
    offline = sc.name == "offline"
    rules = [
        f"Long enough: at least {sc.min_duration_s:g} s measured and {sc.min_requests} "
        f"requests completed in the window (after a {sc.warmup_s:g} s warm-up).",
        "Stability across windows is not judged: a sparse schedule's windows hold a few "
        "requests each, cold and warm by design."
        if sc.name in SPARSE
        else f"Stable: across the last {sc.stability_windows} windows, throughput"
        + f" spreads by at most {sc.stability_tolerance:.0%} ((max - min) / median)"
        + (
            "."
            if offline
            else f", and p99 latency by at most {sc.stability_tolerance:.0%} beyond each "
            "window's own sampling noise (the gap between the windows' one-standard-error "
            "intervals of p99, over the median p99)."
        ),
    ]
    if not offline:
        rules += [
            f"The generator kept pace: at most {sc.max_late_fraction:.0%} of requests dispatched "
            f"more than {sc.late_send_ms:g} ms after their intended time.",
            f"The load was offered as scheduled: at most {sc.max_late_fraction:.0%} of requests "
            f"waited more than {sc.late_send_ms:g} ms for a free client connection.",
        ]
    rules.append("No request failed.")
    if accuracy_floor is not None:
        rules.append(
            f"Accuracy at or above {accuracy_floor:g} against the fp32 reference (top-1 "
            "agreement for classifiers, worst-case cosine similarity for embeddings)."
        )
    rules.append(
        f"Latency SLO: {sc.slo_percentile} at or below {sc.slo_ms:g} ms."
        if sc.slo_ms is not None
        else "No latency SLO was set, so none is judged."
    )
    return rules
