"""`bench-compare`: is a candidate (a new model, a new setting) slower than its baseline,
beyond the measurement's own noise? Reads two stored runs, measures nothing.

`compare(baseline, candidate, gate)` pairs the two folders' points by configuration and load
(`match`), states each metric's change with a confidence interval from the stored per-request
samples (`stats`, `verdict`) and decides the gate; `markdown` renders it for a pull request.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.compare.gate import GateConfig, OnInvalid
from bench.compare.match import ABSENT, match
from bench.compare.samples import point_samples, rss_samples, runs, slos_of
from bench.compare.verdict import (
    Change,
    PointComparison,
    Verdict,
    accuracy_change,
    memory_change,
    slo_change,
    speed_changes,
)
from bench.validation import ConfigError


@dataclass
class Comparison:
    """Everything `bench-compare` says: the matched points and their changes, the
    configurations' throughput at the SLO, what did not match, and why the gate failed."""

    baseline: str
    candidate: str
    gate: GateConfig
    changed: dict[str, tuple[str, str]]
    points: list[PointComparison]
    slo: list[tuple[str, Change]] = field(default_factory=list)
    only_baseline: list[str] = field(default_factory=list)
    only_candidate: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def _valid(row: pd.Series) -> bool:
    return row.get("status") == "measured" and bool(row.get("valid"))


def _reasons(row: pd.Series) -> str:
    if row.get("status") != "measured":
        return f"failed: {row.get('error') or 'not measured'}"
    return str(row.get("invalid_reasons") or "INVALID")


def _describe(row: pd.Series) -> str:
    return " / ".join(str(row[c]) for c in ("model", "backend", "optimization", "strategy"))


def _labels(rows: pd.DataFrame, groups: dict[int, str], many: bool) -> dict[int, str]:
    """Each row's label: its load point, after its configuration where several were measured."""
    return {
        i: f"{_describe(row)} · {row['label']}" if many else str(row["label"])
        for i, row in rows.iterrows()
        if i in groups
    }


def _point(
    before: pd.Series, after: pd.Series, label: str, gate: GateConfig, seed: int
) -> PointComparison:
    point = PointComparison(
        label=label,
        baseline_valid=_valid(before),
        candidate_valid=_valid(after),
        baseline_reasons="" if _valid(before) else _reasons(before),
        candidate_reasons="" if _valid(after) else _reasons(after),
    )
    point.gated = point.valid or gate.invalid is OnInvalid.fail
    # Goodput on both sides at the SLOs the candidate is held to.
    held_to = slos_of(after)
    samples = point_samples(before, held_to), point_samples(after, held_to)
    if all(s is not None and len(s.latency_s) for s in samples):
        point.changes += speed_changes(*samples, gate, seed)
        point.changes.append(memory_change(rss_samples(before), rss_samples(after), gate))
    accuracy = accuracy_change(before, after, gate)
    if accuracy is not None:
        point.changes.append(accuracy)
    return point


def _slo_changes(
    baseline: pd.DataFrame,
    candidate: pd.DataFrame,
    pairs: list[tuple[int, int]],
    groups: tuple[dict[int, str], dict[int, str]],
    gate: GateConfig,
) -> list[tuple[str, Change]]:
    """Throughput at the SLO of each configuration both sides measured with one (the
    scenario's `slo_ms`), from each side's own valid points: an adaptive search may have
    tried other rates on each side."""
    out = []
    rng = np.random.default_rng(gate.seed)
    for before_key, after_key in {groups[0][i]: groups[1][j] for i, j in pairs}.items():
        before = baseline[[groups[0].get(i) == before_key for i in baseline.index]]
        after = candidate[[groups[1].get(j) == after_key for j in candidate.index]]
        first = after.iloc[0]
        slo_ms = pd.to_numeric(first.get("scenario.slo_ms"), errors="coerce")
        if not np.isfinite(slo_ms):
            continue
        quantile = _QUANTILES[str(first.get("scenario.slo_percentile") or "p99")]
        change = slo_change(
            _valid_samples(before), _valid_samples(after), float(slo_ms), quantile, gate, rng
        )
        out.append((_describe(first), change))
    return out


# The latency percentiles a scenario's SLO may name (`scenario.slo_percentile`).
_QUANTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def _valid_samples(rows: pd.DataFrame) -> list:
    found = (point_samples(row) for _, row in rows.iterrows() if _valid(row))
    return [s for s in found if s is not None and len(s.latency_s)]


def _pct(value: float) -> str:
    return f"{value * 100:+.1f}%"


def _failures(points: list[PointComparison], slo: list[tuple[str, Change]]) -> list[str]:
    said = []
    for point in points:
        if not point.gated:
            continue
        if not point.valid:
            sides = [
                side
                for side, ok in (
                    ("baseline", point.baseline_valid),
                    ("candidate", point.candidate_valid),
                )
                if not ok
            ]
            said.append(
                f"{point.label}: INVALID in the {' and the '.join(sides)}, so the gate cannot "
                "vouch for it (gate.invalid=skip leaves it out)"
            )
        for change in point.changes:
            if change.fails:
                said.append(f"{point.label}: {_failure(change)}")
    for label, change in slo:
        if change.fails:
            said.append(f"{label}: {_failure(change)}")
    return said


def _failure(change: Change) -> str:
    if change.method.startswith("same evaluation"):
        floor = f"gate.min_accuracy={change.threshold:g}"
        return f"{change.metric} {change.candidate:.4f} below {floor}"
    low, high = change.regression
    return (
        f"{change.metric} worse by {_pct(low)} to {_pct(high)}, beyond the "
        f"{change.threshold * 100:g}% allowed"
    )


def compare(
    baseline: str | os.PathLike, candidate: str | os.PathLike, gate: GateConfig
) -> Comparison:
    """Compare the runs stored in two folders; ConfigError where no point pairs up."""
    before, after = runs(baseline), runs(candidate)
    matching = match(before, after)
    if not matching.pairs:
        changed = ", ".join(n.removeprefix("config.") for n in matching.changed) or "none"
        raise ConfigError(
            f"{candidate}: no point matches one of {baseline} by configuration and load "
            f"(the baseline measured {', '.join(map(str, before['label']))}; the candidate "
            f"{', '.join(map(str, after['label']))}; fields that differ on every row: "
            f"{changed}); compare runs of the same scenario"
        )
    groups = (matching.baseline_groups, matching.candidate_groups)
    many = len(set(groups[0].values())) > 1
    labels_before = _labels(before, groups[0], many)
    labels_after = _labels(after, groups[1], many)
    points = []
    for n, (i, j) in enumerate(matching.pairs):
        # One seed per pair, from the gate's: the same runs give the same verdicts.
        seed = int(np.random.SeedSequence([gate.seed, n]).generate_state(1)[0])
        points.append(_point(before.loc[i], after.loc[j], labels_after[j], gate, seed))
    slo = _slo_changes(before, after, matching.pairs, groups, gate)
    return Comparison(
        baseline=str(baseline),
        candidate=str(candidate),
        gate=gate,
        # Named as typed on the command line (`model.hidden`; a point's `point.duration_s`).
        changed={
            name.removeprefix("config."): tuple(json.loads(v) if v != ABSENT else v for v in pair)
            for name, pair in matching.changed.items()
        },
        points=points,
        slo=slo,
        only_baseline=[labels_before[i] for i in matching.only_baseline],
        only_candidate=[labels_after[j] for j in matching.only_candidate],
        failures=_failures(points, slo),
    )


__all__ = ["Change", "Comparison", "PointComparison", "Verdict", "compare"]
