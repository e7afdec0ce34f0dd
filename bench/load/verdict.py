"""Whether to believe a load point, MLPerf LoadGen style: VALID or INVALID, rule by rule, with
the reasons and what to do about them. A pure function of the point's statistics and the
scenario's rules.

Each rule is judged on its own and stored on its own (`check_<rule>`: True passed, False
failed, None not judged for this point), beside the rule's text as it was judged, so a report
or a later reader never re-runs today's rules on yesterday's points.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from bench.load.scenarios import ScenarioConfig, scenario_of

# The rules, in the order they are judged and shown; each is a `check_<name>` column.
RULES = ("duration", "stability", "generator", "connections", "errors", "accuracy", "slo")


@dataclass(frozen=True)
class Check:
    """One rule as judged for one point."""

    name: str
    rule: str  # the rule in words, with the thresholds it was judged at
    passed: bool | None  # None: not judged for this point (and why is in `rule`)
    reason: str = ""  # why it failed
    advice: str = ""  # what to do about it

    def as_dict(self) -> dict:
        outcome = {True: "passed", False: "failed", None: "not judged"}[self.passed]
        return {"check": self.name, "rule": self.rule, "outcome": outcome, "reason": self.reason}


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]

    @property
    def valid(self) -> bool:
        return not self.failed

    @property
    def reasons(self) -> list[str]:
        return [c.reason for c in self.failed]

    @property
    def recommendation(self) -> str:
        advice = dict.fromkeys(c.advice for c in self.failed if c.advice)
        return "; ".join(advice) if advice else "none: the point is valid"

    def as_row(self) -> dict:
        return {
            "valid": self.valid,
            "invalid_reasons": "; ".join(self.reasons),
            "invalid_codes": json.dumps([c.name for c in self.failed]),
            "recommendation": self.recommendation,
            "verdict_rules": json.dumps([c.as_dict() for c in self.checks]),
            **{f"check_{c.name}": c.passed for c in self.checks},
        }


def accuracy_metric(stats: dict) -> tuple[str, float]:
    """The accuracy a floor is judged on: top-1 agreement for classifiers, else the worst
    cosine similarity to the fp32 reference."""
    top1 = stats.get("accuracy_top1_agreement", np.nan)
    if top1 is not None and np.isfinite(top1):
        return "top-1 agreement", float(top1)
    return "cosine", float(stats.get("accuracy_cosine_min", np.nan))


def judge(
    stats: dict,
    sc: ScenarioConfig,
    accuracy_floor: float | None = None,
    kind: str | None = None,
) -> Verdict:
    """Apply the scenario's validity rules to one point's `stats` (from `summarize`, plus the
    accuracy columns when an accuracy floor is set). `sc` sets the thresholds; `kind`, the
    scenario whose load the point ran (a search's probe is a `concurrency` point), says which
    rules apply to it (default: `sc`'s own)."""
    shape = scenario_of(kind or sc.name)
    return Verdict(
        (
            _duration(stats, sc),
            _stability(stats, sc, shape.sparse, shape.open_ended),
            _generator(stats, sc, shape.open_ended),
            _connections(stats, sc, shape.open_ended),
            _errors(stats),
            _accuracy(stats, accuracy_floor),
            _slo(stats, sc),
        )
    )


def _duration(stats: dict, sc: ScenarioConfig) -> Check:
    rule = (
        f"Long enough: at least {sc.min_duration_s:g} s measured and {sc.min_requests} "
        f"requests completed in the window (after a {sc.warmup_s:g} s warm-up)."
    )
    if stats["window_s"] >= sc.min_duration_s and stats["completed"] >= sc.min_requests:
        return Check("duration", rule, True)
    needed = sc.min_duration_s
    rate = stats["achieved_qps"]
    if rate and np.isfinite(rate) and rate > 0:
        needed = max(needed, sc.min_requests / rate)
    return Check(
        "duration",
        rule,
        False,
        f"too short: {stats['window_s']:.1f} s and {stats['completed']} requests, "
        f"minimum {sc.min_duration_s:g} s and {sc.min_requests}",
        f"run longer: scenario.duration_s >= {needed * 1.2:.0f}",
    )


def _stability(stats: dict, sc: ScenarioConfig, sparse: bool, open_ended: bool) -> Check:
    if sparse:
        return Check(
            "stability",
            "Stability across windows is not judged: a sparse schedule's windows hold a few "
            "requests each, cold and warm by design.",
            None,
        )
    rule = (
        f"Stable: across the last {sc.stability_windows} windows, throughput spreads by at most "
        f"{sc.stability_tolerance:.0%} ((max - min) / median)"
    )
    rule += (
        "."
        if open_ended
        else f", and p99 latency by at most {sc.stability_tolerance:.0%} beyond each window's "
        "own sampling noise (the gap between the windows' one-standard-error intervals of p99, "
        "over the median p99)."
    )
    unstable = []
    qps_spread = stats["window_qps_spread"]
    p99_spread = stats["window_p99_spread_beyond_noise"]
    if _beyond(qps_spread, sc.stability_tolerance):
        unstable.append(f"throughput differs by {qps_spread:.0%}")
    # An offline burst's latency grows by design as the queue empties: only throughput counts.
    if not open_ended and _beyond(p99_spread, sc.stability_tolerance):
        unstable.append(f"p99 differs by {p99_spread:.0%} beyond sampling noise")
    if not unstable:
        return Check("stability", rule, True)
    return Check(
        "stability",
        rule,
        False,
        f"unstable: across the last {sc.stability_windows} windows "
        f"{' and '.join(unstable)} (tolerance {sc.stability_tolerance:.0%})",
        "run longer (scenario.duration_s) or on a quieter host",
    )


# What each culprit of a late start is called in a reason, and what to do about it.
_CULPRIT_WORDS = {
    "generator": (
        "the generator fell behind (the sender still busy with earlier sends)",
        "lower the rate or give the load generator its own cores",
    ),
    "host": (
        "the host was busy (no core was free for the sender when a send was due)",
        "run on a quieter host, or give the load generator its own cores",
    ),
    "process": (
        "the harness's process was busy (its event loop, or the GIL held by other Python code "
        "of that process, began the request late)",
        "lower the rate, or give the harness its own cores",
    ),
}


def _generator(stats: dict, sc: ScenarioConfig, open_ended: bool) -> Check:
    if open_ended:
        return Check("generator", "Pacing is not judged: every request is sent at once.", None)
    rule = (
        f"The load was offered on time: at most {sc.max_late_fraction:.0%} of requests started "
        f"more than {sc.late_send_ms:g} ms after their intended time through the harness "
        "(its generator behind, the host or its own process busy); sends held up behind a stall "
        "of the system under test count against the system, not the harness."
    )
    late_all = stats["late_send_fraction"]
    by_sut = stats.get("late_sut_fraction", 0.0)
    late = max(late_all - by_sut, 0.0)
    if late <= sc.max_late_fraction:
        return Check("generator", rule, True)
    shares = {name: stats.get(f"late_{name}_fraction", np.nan) for name in _CULPRIT_WORDS}
    if not all(np.isfinite(v) for v in shares.values()):  # no split recorded: the generator's
        shares = {"generator": late, "host": 0.0, "process": 0.0}
    named = sorted((v, k) for k, v in shares.items() if v > 0)[::-1] or [(late, "generator")]
    culprits = ", ".join(f"{_CULPRIT_WORDS[k][0]} for {v:.1%}" for v, k in named)
    head = "generator fell behind" if named[0][1] == "generator" else "load offered late"
    reason = (
        f"{head}: {late:.1%} of requests sent over {sc.late_send_ms:g} ms late "
        f"(limit {sc.max_late_fraction:.0%}): {culprits}"
    )
    return Check("generator", rule, False, reason, _CULPRIT_WORDS[named[0][1]][1])


def _connections(stats: dict, sc: ScenarioConfig, open_ended: bool) -> Check:
    if open_ended:
        return Check("connections", "Client connections are not judged: no schedule.", None)
    limit = stats.get("connections_limit", np.nan)
    if limit is None or not np.isfinite(limit):
        return Check(
            "connections",
            "Client connections are not judged: their number was not limited "
            "(scenario.connections null), so no request waited for one.",
            None,
        )
    rule = (
        f"The load was offered as scheduled: at most {sc.max_late_fraction:.0%} of requests "
        f"waited more than {sc.late_send_ms:g} ms for one of the {limit:g} client connections."
    )
    blocked = stats["blocked_send_fraction"]
    if blocked <= sc.max_late_fraction:
        return Check("connections", rule, True)
    return Check(
        "connections",
        rule,
        False,
        f"client connections exhausted: {blocked:.1%} of requests waited over "
        f"{sc.late_send_ms:g} ms for one of the {limit:g} connections, so the load was not "
        "offered as scheduled",
        "lower the rate, or raise scenario.connections if clients really have more",
    )


def _errors(stats: dict) -> Check:
    rule = "No request failed."
    if not stats["errors"]:
        return Check("errors", rule, True)
    return Check(
        "errors",
        rule,
        False,
        f"errors: {stats['errors']} of {stats['requests']} requests failed",
        "see the errors column and the run log",
    )


def _accuracy(stats: dict, floor: float | None) -> Check:
    if floor is None:
        return Check("accuracy", "No accuracy floor was set, so none is judged.", None)
    rule = (
        f"Accuracy at or above {floor:g} against the fp32 reference (top-1 agreement for "
        "classifiers, worst-case cosine similarity for embeddings)."
    )
    name, value = accuracy_metric(stats)
    if value >= floor:
        return Check("accuracy", rule, True)
    return Check(
        "accuracy",
        rule,
        False,
        f"accuracy below floor: {name} {value:.4f} < {floor:g}",
        "choose a less aggressive optimization, or lower accuracy_floor",
    )


def _slo(stats: dict, sc: ScenarioConfig) -> Check:
    if sc.slo_ms is None:
        return Check("slo", "No latency SLO was set, so none is judged.", None)
    percentile = str(sc.slo_percentile)
    rule = f"Latency SLO: {percentile} at or below {sc.slo_ms:g} ms."
    observed = stats.get(f"latency_{percentile}_ms", np.nan)
    if observed <= sc.slo_ms:
        return Check("slo", rule, True)
    return Check(
        "slo",
        rule,
        False,
        f"SLO missed: {percentile} {observed:.1f} ms > {sc.slo_ms:g} ms",
        "lower the load, batch, add workers, or choose a faster configuration",
    )


def _beyond(spread: float, tolerance: float) -> bool:
    # A spread that cannot be computed (an empty window) is itself a sign of instability.
    return not np.isfinite(spread) or spread > tolerance
