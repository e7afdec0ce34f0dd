"""A comparison as Markdown for a pull-request comment: a jinja2 template and the rows it
shows, the worst regression first."""

from __future__ import annotations

import math

import jinja2

from bench.compare import Comparison
from bench.compare.stats import BLOCKS
from bench.compare.verdict import Change, PointComparison


def _number(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "-"
    if not unit:
        return f"{value:.4f}"
    digits = 2 if abs(value) < 100 else 1 if abs(value) < 1000 else 0
    return f"{value:.{digits}f} {unit}"


def _pct(value: float) -> str:
    return f"{value * 100:+.1f}%" if math.isfinite(value) else "?"


def _change(change: Change) -> str:
    if not math.isfinite(change.baseline) or not change.baseline:
        return "-"
    point = change.candidate / change.baseline - 1.0
    if change.low == change.high:
        return _pct(point)
    return f"{_pct(point)} [{_pct(change.low)}, {_pct(change.high)}]"


def _gate(change: Change, point: PointComparison | None) -> str:
    if point is not None and not point.gated:
        return "skipped (INVALID)"
    if change.threshold is None:
        return "not gated"
    if change.method.startswith("same evaluation"):
        limit = f"floor {change.threshold:g}"
    else:
        limit = f"{change.threshold * 100:g}%"
    return f"**FAIL** ({limit})" if change.fails else f"ok ({limit})"


def _rows(comparison: Comparison) -> list[dict[str, str]]:
    entries = [(p.label, p, c) for p in comparison.points for c in p.changes]
    entries += [(label, None, c) for label, c in comparison.slo]

    def worst(entry) -> tuple:
        _, _, change = entry
        sign = 1.0 if change.worse_when == "higher" else -1.0
        moved = sign * (change.candidate / change.baseline - 1.0) if change.baseline else math.nan
        high = change.regression[1]
        return (
            not change.fails,
            -(moved if math.isfinite(moved) else -math.inf),
            -(high if math.isfinite(high) else -math.inf),
        )

    rows = []
    for label, point, change in sorted(entries, key=worst):
        flag = "" if point is None or point.valid else " (INVALID)"
        rows.append(
            {
                "point": f"{label}{flag}",
                "metric": change.metric,
                "baseline": _number(change.baseline, change.unit),
                "candidate": _number(change.candidate, change.unit),
                "change": _change(change),
                "verdict": f"**{change.word}**" if change.fails else change.word,
                "gate": _gate(change, point),
            }
        )
    return rows


def headline(comparison: Comparison) -> str:
    """How many matched points came out slower, unsure, faster, same."""
    verdicts = [str(p.verdict) for p in comparison.points]
    counted = ", ".join(
        f"{verdicts.count(v)} {v}" for v in ("slower", "unsure", "faster", "same") if v in verdicts
    )
    return f"{len(verdicts)} matched point{'s' if len(verdicts) != 1 else ''}: {counted}"


def markdown(comparison: Comparison) -> str:
    """The Markdown summary of `comparison`."""
    template = jinja2.Environment(
        loader=jinja2.PackageLoader("bench.compare", "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    ).get_template("summary.md.j2")
    gate = comparison.gate
    changed = ", ".join(
        f"`{name}` {before} → {after}" for name, (before, after) in comparison.changed.items()
    )
    return template.render(
        headline=headline(comparison),
        passed=comparison.passed,
        failures=comparison.failures,
        baseline=comparison.baseline,
        candidate=comparison.candidate,
        changed=changed or "nothing in the stored configuration (an A/A comparison)",
        confidence=f"{gate.confidence * 100:g}%",
        rows=_rows(comparison),
        invalid=[p.label + ": " + p.invalid_text() for p in comparison.points if not p.valid],
        on_invalid=str(gate.invalid),
        only_baseline=comparison.only_baseline,
        only_candidate=comparison.only_candidate,
        resamples=gate.resamples,
        seed=gate.seed,
        blocks=BLOCKS,
        same_within=f"{gate.same_within * 100:g}%",
    )
