"""Whether to believe a load point, MLPerf LoadGen style: VALID or INVALID, rule by rule, with
the reasons and what to do about them. A pure function of the point's statistics and the
scenario's rules.

Each rule is judged on its own and stored on its own (`check_<rule>`: True passed, False
failed, None not judged for this point), beside the rule's text as it was judged, so a report
or a later reader never re-runs today's rules on yesterday's points. A rule whose evidence is
too thin to decide (windows too small to compare, a percentile too few requests can bound) is
"too short to judge": not a pass, not a failure of the system under test; the point is INVALID
and the advice says how much longer to run.

Shares and percentiles are judged with their own sampling error (`bench.load.sampling`), so a
point fails only on differences its sample size can resolve.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from bench.load.sampling import min_samples_to_bound, share_significantly_over
from bench.load.scenarios import ScenarioConfig, scenario_of
from bench.load.stats import WINDOW_CONFIDENCE, WINDOW_PERCENTILES

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
    # Not judged because the point holds too few requests to decide: the point is INVALID.
    too_short: bool = False

    @property
    def outcome(self) -> str:
        if self.too_short:
            return "too short to judge"
        return {True: "passed", False: "failed", None: "not judged"}[self.passed]

    @property
    def blocks(self) -> bool:
        """Whether this check makes the point INVALID."""
        return self.passed is False or self.too_short

    def as_dict(self) -> dict:
        return {
            "check": self.name,
            "rule": self.rule,
            "outcome": self.outcome,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.blocks]

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
            "too_short_to_judge": json.dumps([c.name for c in self.checks if c.too_short]),
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
            "Stability across windows is not judged: the windows are not meant to agree (a "
            "sparse schedule's hold a few requests each, cold and warm; a trace's rate changes "
            "by design).",
            None,
        )
    confidence = stats.get("window_confidence", np.nan)
    rule = (
        f"Stable: across the last {sc.stability_windows} windows, throughput and "
        + ("" if open_ended else "p50 and p99 latency ")
        + f"differ by at most {sc.stability_tolerance:.0%} beyond each window's own sampling "
        f"noise (throughput: the binomial spread of steady arrivals; a percentile: the gap "
        f"between the windows' {confidence:.0%} order-statistic intervals, over the larger of "
        f"the median and the harness's timing tolerance, {sc.late_send_ms:g} ms "
        "(scenario.late_send_ms: a gap below what the harness counts as a late send is not "
        "drift), each window's requests counted as the independent ones they are worth (a "
        "queue's latencies come in runs); a percentile the windows hold too few requests to "
        "bound on both sides is not compared)."
    )
    # An offline burst's latency grows by design as the queue empties: only throughput counts.
    compared = {"throughput": stats.get("window_qps_spread_beyond_noise", np.nan)}
    if not open_ended:
        compared["p50"] = stats.get("window_p50_spread_beyond_noise", np.nan)
        compared["p99"] = stats.get("window_p99_spread_beyond_noise", np.nan)
    judged = {name: spread for name, spread in compared.items() if np.isfinite(spread)}
    unjudged = [name for name in compared if name not in judged]
    latency_judged = open_ended or any(name in judged for name in ("p50", "p99"))
    if "throughput" not in judged or not latency_judged:
        counts = stats.get("window_requests") or []
        smallest = min(counts) if len(counts) else 0
        return Check(
            "stability",
            rule,
            None,
            f"too short to judge stability: the smallest of {sc.stability_windows} windows "
            f"holds {smallest} requests, too few to compare {' and '.join(unjudged)}",
            _run_longer(
                stats, sc, _window_requests_to_compare_p99(confidence) * sc.stability_windows
            ),
            too_short=True,
        )
    if unjudged:
        rule += f" Not compared for this point (too few requests a window): {', '.join(unjudged)}."
    unstable = [
        f"{name} differs by {spread:.0%} beyond sampling noise"
        for name, spread in judged.items()
        if spread > sc.stability_tolerance
    ]
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


def _window_requests_to_compare_p99(confidence: float) -> int:
    """Requests a window needs to bound its p99 on both sides at `confidence`: what a point
    too short to judge is advised to reach, so that every percentile is compared."""
    if not np.isfinite(confidence):
        confidence = WINDOW_CONFIDENCE
    return min_samples_to_bound(WINDOW_PERCENTILES["p99"], 1.0 - (1.0 - confidence) / 2.0)


def _run_longer(stats: dict, sc: ScenarioConfig, requests: int) -> str:
    """Advice: the duration that gives `requests` requests at the point's achieved rate."""
    needed = sc.min_duration_s
    rate = stats.get("achieved_qps", np.nan)
    if rate and np.isfinite(rate) and rate > 0:
        needed = max(needed, requests / rate)
    return f"run longer: scenario.duration_s >= {needed * 1.2:.0f}"


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
        "(its generator behind, the host or its own process busy), beyond sampling error "
        f"(fails only where the share is over {sc.max_late_fraction:.0%} at "
        f"{sc.confidence:.0%} confidence, by a binomial test on the late count); sends held up "
        "behind a stall of the system under test count against the system, not the harness."
    )
    requests = int(stats.get("requests", 0))
    late_all = stats["late_send_fraction"]
    by_sut = stats.get("late_sut_fraction", 0.0)
    late = max(late_all - by_sut, 0.0)
    count = round(late * requests)  # the shares are counts over `requests`
    if not share_significantly_over(count, requests, sc.max_late_fraction, sc.confidence):
        return Check("generator", rule, True)
    shares = {name: stats.get(f"late_{name}_fraction", np.nan) for name in _CULPRIT_WORDS}
    if not all(np.isfinite(v) for v in shares.values()):  # no split recorded: the generator's
        shares = {"generator": late, "host": 0.0, "process": 0.0}
    named = sorted((v, k) for k, v in shares.items() if v > 0)[::-1] or [(late, "generator")]
    culprits = ", ".join(f"{_CULPRIT_WORDS[k][0]} for {v:.1%}" for v, k in named)
    head = "generator fell behind" if named[0][1] == "generator" else "load offered late"
    reason = (
        f"{head}: {late:.1%} of requests ({count} of {requests}) sent over "
        f"{sc.late_send_ms:g} ms late (limit {sc.max_late_fraction:.0%}): {culprits}"
    )
    advice = _CULPRIT_WORDS[named[0][1]][1]
    if named[0][1] == "host" and stats.get("sender_real_time") is False:
        advice += (
            " (the sender ran without real-time priority: run the harness with CAP_SYS_NICE, "
            "as root does, so a busy core does not hold up its wake-ups)"
        )
    return Check("generator", rule, False, reason, advice)


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
        f"waited more than {sc.late_send_ms:g} ms for one of the {limit:g} client connections, "
        f"beyond sampling error (a binomial test at {sc.confidence:.0%} confidence)."
    )
    blocked = stats["blocked_send_fraction"]
    requests = int(stats.get("requests", 0))
    count = round(blocked * requests)
    if not share_significantly_over(count, requests, sc.max_late_fraction, sc.confidence):
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
    note = stats.get("accuracy_note") or ""
    if note:
        return Check(
            "accuracy",
            rule,
            False,
            f"accuracy not measured: {note}",
            "serve outputs of the model's own shape and dtype, or set accuracy_samples > 0",
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
    if sc.generative_slos and "slo_attainment" in stats:
        return _generative_slo(stats, sc)
    if sc.slo_ms is None:
        return Check("slo", "No latency SLO was set, so none is judged.", None)
    percentile = str(sc.slo_percentile)
    rule = (
        f"Latency SLO: {percentile} at or below {sc.slo_ms:g} ms, on enough requests to bound "
        f"{percentile} at {sc.confidence:.0%} confidence (LoadGen's early stopping)."
    )
    observed = stats.get(f"latency_{percentile}_ms", np.nan)
    more = stats.get(f"latency_{percentile}_more_needed", 0)
    if observed <= sc.slo_ms and more > 0:
        requests = int(stats.get("requests", 0))
        return Check(
            "slo",
            rule,
            None,
            f"too short to judge the SLO: {percentile} {observed:.1f} ms rests on {requests} "
            f"requests; bounding it at {sc.confidence:.0%} needs {more} more",
            _run_longer(stats, sc, requests + int(more)),
            too_short=True,
        )
    if observed <= sc.slo_ms:
        return Check("slo", rule, True)
    return Check(
        "slo",
        rule,
        False,
        f"SLO missed: {percentile} {observed:.1f} ms > {sc.slo_ms:g} ms",
        "lower the load, batch, add workers, or choose a faster configuration",
    )


def _generative_slo(stats: dict, sc: ScenarioConfig) -> Check:
    """A generative point's SLOs: at least `slo_percentile` of its requests met every one set
    (TTFT and TPOT); its end-to-end latency (`slo_ms`) is not judged, it grows with the output
    length asked for."""
    percentile = str(sc.slo_percentile)
    share = float(percentile[1:]) / 10 ** (len(percentile) - 3)
    limits = [
        f"{name} at or below {value:g} ms"
        for name, value in (("TTFT", sc.slo_ttft_ms), ("TPOT", sc.slo_tpot_ms))
        if value is not None
    ]
    rule = f"Generative SLOs: at least {share:g}% of requests with {' and '.join(limits)}."
    attained = stats.get("slo_attainment", np.nan)
    if attained * 100 >= share:
        return Check("slo", rule, True)
    return Check(
        "slo",
        rule,
        False,
        f"SLO missed: {attained:.1%} of requests met {' and '.join(limits)} "
        f"(goodput {stats.get('goodput_qps', np.nan):.3g} of "
        f"{stats.get('achieved_qps', np.nan):.3g} requests/s)",
        "lower the load, shorten the outputs, or serve with more replicas or a faster model",
    )
