"""Pairing the points of two runs: by configuration and load, leaving out what the candidate
changed. Pure functions over the stored rows.

A row's identity is its stored measurement config (`config`, as `bench` keyed it) and its
load point (`point`), flattened to dotted fields. A field with one value over every baseline
row and another over every candidate row is what changed between the two (the model, its
`service_ms`, `backend.threads`): it is left out of the match and reported. The load itself
(the point's concurrency, rate, batch size, connections, scenario and seeds) is never left out:
two runs of one point each at other loads do not compare. Every other field must agree, so a
sweep's points pair with the candidate's point of the same backend, strategy and load, and a
point one side has and the other lacks is named as unmatched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

ABSENT = "<absent>"
# A point's fields that say how long it was measured, not what load it offered: they may differ.
_LENGTH = {"point.duration_s", "point.warmup_s"}


def flatten(doc: Any, prefix: str = "") -> dict[str, str]:
    """Dotted fields of a JSON document, each value as canonical JSON text."""
    if isinstance(doc, dict) and doc:
        out: dict[str, str] = {}
        for key, value in doc.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): json.dumps(doc, sort_keys=True)}


def identity(row: pd.Series) -> dict[str, str]:
    """A row's configuration (`config.*`) and load point (`point.*`) fields."""
    return {
        **flatten(json.loads(row["config"]), "config."),
        **flatten(json.loads(row["point"]), "point."),
    }


def changed_fields(
    baseline: list[dict[str, str]], candidate: list[dict[str, str]]
) -> dict[str, tuple[str, str]]:
    """Fields with one value on every baseline row and another on every candidate row, the
    load excepted: field -> (baseline value, candidate value)."""
    fields = set().union(*baseline, *candidate)
    changed = {}
    for name in sorted(fields):
        if name.startswith("point.") and name not in _LENGTH:
            continue
        before = {ident.get(name, ABSENT) for ident in baseline}
        after = {ident.get(name, ABSENT) for ident in candidate}
        if len(before) == 1 and len(after) == 1 and before != after:
            changed[name] = (before.pop(), after.pop())
    return changed


def key(ident: dict[str, str], ignored: set[str], point: bool = True) -> str:
    """The match key of an identity: every field but the ignored ones (and, with `point`
    false, but the load point: the key of the group of points one configuration measured)."""
    kept = {
        name: value
        for name, value in ident.items()
        if name not in ignored and (point or not name.startswith("point."))
    }
    return json.dumps(kept, sort_keys=True)


@dataclass(frozen=True)
class Matching:
    """Which rows pair up: (baseline index, candidate index) pairs, the rows of each side
    with no partner, and the fields the candidate changed."""

    pairs: list[tuple[int, int]]
    only_baseline: list[int]
    only_candidate: list[int]
    changed: dict[str, tuple[str, str]]
    # Row index -> its group's key (one configuration's points), on each side.
    baseline_groups: dict[int, str]
    candidate_groups: dict[int, str]


def match(baseline: pd.DataFrame, candidate: pd.DataFrame) -> Matching:
    """Pair the rows of `baseline` and `candidate` (each with `config` and `point` columns).
    A key measured more than once on one side (a folder holding two runs of it) pairs its
    latest row."""
    before = {i: identity(row) for i, row in baseline.iterrows()}
    after = {i: identity(row) for i, row in candidate.iterrows()}
    changed = changed_fields(list(before.values()), list(after.values()))
    ignored = set(changed)
    keyed_before = {key(ident, ignored): i for i, ident in before.items()}
    keyed_after = {key(ident, ignored): i for i, ident in after.items()}
    pairs = [(i, keyed_after[k]) for k, i in keyed_before.items() if k in keyed_after]
    paired_before = {i for i, _ in pairs}
    paired_after = {j for _, j in pairs}
    return Matching(
        pairs=pairs,
        only_baseline=[i for i in before if i not in paired_before],
        only_candidate=[j for j in after if j not in paired_after],
        changed=changed,
        baseline_groups={i: key(ident, ignored, point=False) for i, ident in before.items()},
        candidate_groups={j: key(ident, ignored, point=False) for j, ident in after.items()},
    )
