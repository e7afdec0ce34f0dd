"""Build one self-contained HTML report from a run or sweep folder's stored results and the
plan stored beside them. It reads what the results and the plan store hold (each point's
verdict rule by rule, the plan's sizing and serverless costs) and computes neither again."""

from __future__ import annotations

import base64
import io
import json
import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import bench.results
from bench.capacity.store import Plan
from bench.results.histogram import PERCENTILE_METHOD
from reports import figures

REPORT_FILE = "report.html"
TEMPLATE = "report.html.j2"
DASH = "–"
_DPI = 150

HOST_FIELDS = (
    ("host_name", "host"),
    ("host_cpu_model", "CPU"),
    ("host_cores", "logical cores"),
    ("host_physical_cores", "physical cores"),
    ("host_isa", "ISA"),
    ("host_mem_gb", "memory (GB)"),
    ("host_gpu", "GPU"),
    ("host_versions", "versions"),
    ("git_rev", "git revision"),
)


def build_report(path: str | os.PathLike) -> Path:
    """Render `report.html` into a run or sweep folder from its stored results; return its path."""
    return write_report(load_results(path), report_folder(path))


def load_results(path: str | os.PathLike) -> pd.DataFrame:
    """Every results row under `path`; FileNotFoundError naming the path when there are none."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such results folder")
    return bench.results.load(path)


def report_folder(path: str | os.PathLike) -> Path:
    """Where the report of `path` goes: the folder itself, or the folder of a results file."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def write_report(df: pd.DataFrame, folder: str | os.PathLike) -> Path:
    """Write the report of a results frame as `folder/report.html`; return its path."""
    folder = Path(folder)
    report = folder / REPORT_FILE
    report.write_text(render(df, folder), encoding="utf-8")
    return report


def render(df: pd.DataFrame, source: Path) -> str:
    """The report's HTML for a results frame read from `source`."""
    return _environment().get_template(TEMPLATE).render(**context(df, source))


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def context(df: pd.DataFrame, source: Path) -> dict:
    """Everything the template shows, as plain data: the template only lays it out."""
    plan = read_plan(source)
    df = _prepare(_with_costs(df, plan))
    return {
        "title": f"Benchmark report: {source.resolve().name}",
        "source": str(source),
        "summary": summary(df),
        "headline": headline(df),
        "headline_ok": bool(_fastest_valid(df) is not None),
        "table": results_table(df),
        "figures": figure_panels(df),
        "verdicts": verdicts(df),
        "failures": failures(df),
        "method": method(df, source),
        "plan": plan_section(plan),
    }


def read_plan(source: Path) -> Plan | None:
    """The plan stored beside the results, if the planner wrote one."""
    try:
        return Plan.read(source)
    except FileNotFoundError:
        return None


# The plan's serverless cost per point, joined onto the results' rows.
COST = "serverless_cost_per_million"
COST_CURRENCY = "serverless_cost_currency"
_POINT_KEYS = ["run_id", "point_id"]


def _with_costs(df: pd.DataFrame, plan: Plan | None) -> pd.DataFrame:
    """The results with each serverless point's cost per million requests, as the plan priced
    its measured usage (the results hold usage only: prices change, measurements do not)."""
    costs = plan.serverless if plan is not None else pd.DataFrame()
    needed = {*_POINT_KEYS, "cost_per_million", "currency"}
    if costs.empty or not needed <= set(costs.columns) or not set(_POINT_KEYS) <= set(df.columns):
        return df
    keyed = costs[[*_POINT_KEYS, "cost_per_million", "currency"]].rename(
        columns={"cost_per_million": COST, "currency": COST_CURRENCY}
    )
    keyed = keyed.astype({key: str for key in _POINT_KEYS}).drop_duplicates(_POINT_KEYS)
    joined = df.astype({key: str for key in _POINT_KEYS}).merge(keyed, on=_POINT_KEYS, how="left")
    return joined.set_axis(df.index)


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    """Config labels, scenario settings as columns, rows grouped by configuration."""
    df = df.reset_index(drop=True)
    df = df.assign(config_label=figures.config_labels(df))
    if "status" not in df.columns:
        df = df.assign(status="measured")
    return df.sort_values("config_label", kind="stable").reset_index(drop=True)


def _json(text: object) -> object:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


# --- the headline ------------------------------------------------------------------------------


def _measured(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"].astype(str) == "measured"]


def _valid(df: pd.DataFrame) -> pd.Series:
    if "valid" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["valid"].eq(True)


def _fastest_valid(df: pd.DataFrame) -> pd.Series | None:
    if "achieved_qps" not in df.columns:
        return None
    candidates = _measured(df)[_valid(_measured(df))].dropna(subset=["achieved_qps"])
    if candidates.empty:
        return None
    return candidates.loc[candidates["achieved_qps"].idxmax()]


def headline(df: pd.DataFrame) -> str:
    """One sentence: the fastest valid point, or why no point was valid."""
    if "config_label" not in df.columns:
        df = _prepare(df)
    best = _fastest_valid(df)
    if best is not None:
        return _best_sentence(best)
    if df.empty:
        return "The results hold no load points."
    measured = _measured(df)
    failed = len(df) - len(measured)
    if measured.empty:
        who = "the only point" if failed == 1 else f"all {failed} points"
        return f"No load point was measured: {who} failed; {_first_error(df)}."
    more = f"; {_plural(failed, 'more point')} failed" if failed else ""
    reason = _most_common_reason(measured)
    if reason is None:
        return f"No load point was valid, and the results store no reason why{more}."
    check, count, example = reason
    what = f"{CHECK_NAMES.get(check, check)} (for example “{example}”)" if check else f"“{example}”"
    return (
        f"No load point was valid; the most common reason, in {count} of "
        f"{_plural(len(measured), 'measured point')}, was {what}{more}."
    )


def _best_sentence(best: pd.Series) -> str:
    p99 = _format_ms(best.get("latency_p99_ms"))
    latency = "" if p99 == DASH else f" with p99 latency {p99} ms"
    return (
        f"The fastest valid point is {best['config_label']} at {_cell(best, 'label')}: "
        f"{_format_qps(best['achieved_qps'])} requests/s{latency}."
    )


def _first_error(df: pd.DataFrame) -> str:
    errors = df["error"].dropna().astype(str) if "error" in df.columns else pd.Series([])
    errors = errors[errors.str.strip() != ""]
    return f"the first error: {errors.iloc[0]}" if len(errors) else "no error text was recorded"


def _most_common_reason(rows: pd.DataFrame) -> tuple[str | None, int, str] | None:
    """(the check most often failed, points that failed it, one of their reasons); the check
    is None for rows stored without their verdict rule by rule, whose reasons' text counts
    whole. None if no reason is stored."""
    kinds: Counter[str] = Counter()
    examples: dict[str, tuple[str | None, str]] = {}
    for _, row in rows.iterrows():
        failed: dict[str, tuple[str | None, str]] = {}
        for check, reason in failed_rules(row):
            failed.setdefault(check if check is not None else reason, (check, reason))
        for kind, found in failed.items():
            kinds[kind] += 1
            examples.setdefault(kind, found)
    if not kinds:
        return None
    kind, count = kinds.most_common(1)[0]
    check, example = examples[kind]
    return check, count, example


# What failed_rules names a rule that was too short to judge, whichever rule it was.
TOO_SHORT = "too_short"
# A failed rule's name in a sentence, by its check (`check_<name>` columns).
CHECK_NAMES = {
    "duration": "too short",
    "stability": "unstable",
    "generator": "generator fell behind",
    "connections": "client connections exhausted",
    "errors": "errors",
    "accuracy": "accuracy below floor",
    "slo": "SLO missed",
    TOO_SHORT: "too short to judge",
}


def verdict_rules(row: pd.Series) -> list[dict] | None:
    """The point's verdict rule by rule as stored (`verdict_rules`): each with its `check`,
    the `rule` as judged, its `outcome` and, when it failed, the `reason`; None for rows
    stored before verdicts were stored rule by rule."""
    stored = row.get("verdict_rules")
    # JSON text, as the contract stores it; a list where a frame was built in memory.
    parsed = list(stored) if isinstance(stored, (list, tuple, np.ndarray)) else _json(stored)
    if not isinstance(parsed, list):
        return None
    return [rule for rule in parsed if isinstance(rule, dict)]


def failed_rules(row: pd.Series) -> list[tuple[str | None, str]]:
    """(check, reason) of each rule the point failed, in rule order (a rule too short to judge
    as TOO_SHORT, whichever it was). A row stored before
    verdicts were stored rule by rule gives its reasons' text whole, with no check."""
    rules = verdict_rules(row)
    if rules is not None:
        return [
            (
                TOO_SHORT
                if rule.get("outcome") == "too short to judge"
                else str(rule.get("check", "")),
                str(rule.get("reason") or rule.get("rule", "")),
            )
            for rule in rules
            if rule.get("outcome") in ("failed", "too short to judge")
        ]
    text = row.get("invalid_reasons")
    return [(None, text.strip())] if isinstance(text, str) and text.strip() else []


def summary(df: pd.DataFrame) -> str:
    """How many points, runs and hosts the report covers, and how many were valid."""
    measured = _measured(df)
    valid = int(_valid(measured).sum())
    runs = df["run_dir"].nunique() if "run_dir" in df.columns else 1
    hosts = df["host_name"].nunique() if "host_name" in df.columns else 0
    parts = [
        f"{_plural(len(df), 'load point')} from {_plural(runs, 'run')}",
        f"{valid} valid",
        f"{len(measured) - valid} invalid",
        f"{len(df) - len(measured)} failed",
    ]
    if hosts > 1:
        parts.append(f"measured on {hosts} hosts")
    return ", ".join(parts) + "."


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# --- number formatting -------------------------------------------------------------------------


def _finite(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _formatter(spec: Callable[[float], str]) -> Callable[[object], str]:
    def format_value(value: object) -> str:
        number = _finite(value)
        return DASH if number is None else spec(number)

    return format_value


# Sub-millisecond latencies are common on small models: keep two decimals there.
_format_ms = _formatter(lambda v: f"{v:,.1f}" if abs(v) >= 1 else f"{v:.2f}")
_format_qps = _formatter(lambda v: f"{v:,.1f}")
_format_int = _formatter(lambda v: f"{v:,.0f}")
_format_share = _formatter(lambda v: f"{v:.1%}")
_format_sci = _formatter(lambda v: f"{v:.1e}" if v else "0")
_format_cosine = _formatter(lambda v: f"{v:.5f}")
_format_seconds = _formatter(lambda v: f"{v:,.2f}")
_format_eur = _formatter(lambda v: f"{v:,.2f}")


def _format_text(value: object) -> str:
    return DASH if _missing(value) or value == "" else str(value)


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    format: Callable[[object], str]
    title: str = ""


TABLE_COLUMNS = (
    Column("achieved_qps", "qps", _format_qps, "completions in the window / window length"),
    Column("latency_p50_ms", "p50 ms", _format_ms, "from the intended send time"),
    Column("latency_p90_ms", "p90 ms", _format_ms, "from the intended send time"),
    Column("latency_p99_ms", "p99 ms", _format_ms, "from the intended send time"),
    Column(
        "latency_p99_bound_ms",
        "p99 bound ms",
        _format_ms,
        "upper bound of p99 at the stated confidence (LoadGen's early stopping); a dash where "
        "too few requests bound it",
    ),
    Column(
        "latency_p99_more_needed",
        "p99 needs",
        _format_int,
        "more requests a p99 bound needs (0: bounded)",
    ),
    Column("latency_p999_ms", "p99.9 ms", _format_ms, "from the intended send time"),
    Column("latency_max_ms", "max ms", _format_ms, "from the intended send time"),
    Column("sent_latency_p99_ms", "p99 sent ms", _format_ms, "from the actual send time"),
    Column("late_send_fraction", "late sends", _format_share, "sent later than intended"),
    Column("ttft_p50_ms", "TTFT p50", _format_ms, "time to first token, from the intended send"),
    Column("ttft_p99_ms", "TTFT p99", _format_ms, "time to first token, from the intended send"),
    Column("itl_p50_ms", "ITL p50", _format_ms, "every gap between streamed tokens"),
    Column("itl_p99_ms", "ITL p99", _format_ms, "every gap between streamed tokens"),
    Column("tpot_p50_ms", "TPOT p50", _format_ms, "a request's mean gap after its first token"),
    Column("tpot_p99_ms", "TPOT p99", _format_ms, "a request's mean gap after its first token"),
    Column("output_tokens_per_s", "tokens/s", _format_qps, "output tokens of completions / window"),
    Column(
        "request_output_tokens_per_s_p50",
        "tokens/s/req",
        _format_qps,
        "one request's own output rate (1 / TPOT), median",
    ),
    Column("goodput_qps", "goodput", _format_qps, "requests/s that met the TTFT and TPOT SLOs"),
    Column("output_tokens_mean", "out tokens", _format_qps, "output tokens per request, mean"),
    Column(
        "output_tokens_counted_by",
        "counted by",
        _format_text,
        "usage: the server's count; stream: one token per chunk",
    ),
    Column("errors", "errors", _format_int, "failed requests in the window"),
    Column("cpu_util_pct", "CPU %", _format_int, "CPU of the serving processes"),
    Column("rss_peak_mb", "RSS MB", _format_int, "peak resident memory"),
    Column("gpu_util_pct", "GPU %", _format_int, "GPU utilisation"),
    Column("gpu_mem_peak_mb", "GPU MB", _format_int, "peak GPU memory"),
    Column("cold_start_s", "cold start s", _format_seconds, "start to first answer"),
    Column("cold_starts", "cold starts", _format_int, "instances started during the point"),
    Column("cold_start_fraction", "cold share", _format_share, "requests that waited for a start"),
    Column(
        COST,
        "cost / 1M",
        _format_seconds,
        "serverless cost per million requests: the measured usage at the plan's dated prices",
    ),
    Column("cache_hit_ratio", "cache hits", _format_share, "requests the response cache answered"),
    Column("workload_repeat_share", "repeats", _format_share, "requests repeating an earlier one"),
    Column("cache_hit_latency_p50_ms", "hit p50 ms", _format_ms, "cache hits, from intended send"),
    Column("cache_hit_latency_p99_ms", "hit p99 ms", _format_ms, "cache hits, from intended send"),
    Column("cache_miss_latency_p50_ms", "miss p50 ms", _format_ms, "misses: the model answered"),
    Column("cache_miss_latency_p99_ms", "miss p99 ms", _format_ms, "misses: the model answered"),
    Column("cache_mb", "cache MB", _format_seconds, "what the cache held at the point's end"),
    Column("throttled_fraction", "throttled", _format_share, "CFS periods in which the limit bit"),
    Column("accuracy_max_abs_diff", "max |Δ|", _format_sci, "largest difference from fp32"),
    Column("accuracy_cosine_min", "min cos", _format_cosine, "lowest cosine to fp32 outputs"),
    Column("accuracy_top1_agreement", "top-1", _format_share, "top-1 agreement with fp32"),
    Column("accuracy_note", "accuracy note", _format_text, "why the accuracy columns are empty"),
    Column(
        "predictor_threads",
        "threads",
        _format_int,
        "intra-op threads, pinned or chosen by the probe (predictor_threads_choice says which)",
    ),
)


def _present(values: pd.Series) -> pd.Series:
    """Cells holding something: not missing, not empty text."""
    return values.notna() & (values.astype(str) != "")


def _header(column: Column, df: pd.DataFrame) -> str:
    """A column's header; the serverless cost's names the currency it is priced in."""
    if column.key == COST and COST_CURRENCY in df.columns:
        currencies = df[COST_CURRENCY].dropna().astype(str).unique()
        if len(currencies) == 1:
            return f"{currencies[0].upper()} / 1M"
    return column.header


def _cell(row: pd.Series, key: str) -> str:
    value = row.get(key)
    return DASH if _missing(value) or value == "" else str(value)


def _badge(row: pd.Series) -> str:
    if str(row.get("status")) != "measured":
        return "FAILED"
    valid = row.get("valid")
    return "VALID" if isinstance(valid, (bool, np.bool_)) and valid else "INVALID"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# --- sections ----------------------------------------------------------------------------------


def results_table(df: pd.DataFrame) -> dict:
    """Headers and formatted rows; a metric column appears where any point has a value."""
    shown = [c for c in TABLE_COLUMNS if c.key in df.columns and _present(df[c.key]).any()]
    rows = [
        {
            "config": row["config_label"],
            "label": _cell(row, "label"),
            "cells": [c.format(row[c.key]) for c in shown],
            "badge": _badge(row),
        }
        for _, row in df.iterrows()
    ]
    headers = [{"text": _header(c, df), "title": f"{c.key}: {c.title}"} for c in shown]
    return {"headers": headers, "rows": rows}


FIGURES = (
    (
        "Latency against throughput",
        figures.latency_vs_throughput,
        "p50 (dashed) and p99 (solid) latency, counted from each request's intended send time, "
        "against the throughput achieved. Hollow markers are invalid points.",
    ),
    (
        "Latency distributions",
        figures.latency_cdfs,
        "The fraction of requests answered within a given latency, per load point; "
        "the dotted line marks p99. Lighter shades are lighter loads.",
    ),
    (
        "Latency over time",
        figures.timeline,
        "Each trace point's p99 (solid) and p50 (dashed) latency per window of its time series, "
        "counted from the intended send time, with the rate offered in each window behind it "
        "(grey).",
    ),
    (
        "Stability across windows",
        figures.window_throughput,
        "Each point's throughput in successive windows of its measured period, relative to "
        "its own median: flat lines are steady measurements.",
    ),
    (
        "Resource use",
        figures.resource_use,
        "CPU of the serving processes (100% is one core), their peak resident memory and, "
        "where a GPU was read, its utilisation and memory, per load point.",
    ),
)


# Shown where a response cache ran.
CACHE_FIGURE = (
    "Response cache: hits and misses",
    figures.cache_latency,
    "Per load point behind a response cache: p50 (lighter) and p99 (whole bar) latency of the "
    "requests the cache answered and of those the model did, with the share it answered.",
)


# Shown where a generative model streamed tokens.
GENERATIVE_FIGURES = (
    (
        "Time to first token and inter-token latency",
        figures.token_latency_cdfs,
        "The fraction of requests whose first token came within a given time of their intended "
        "send (left), and of the gaps between streamed tokens within a given length (right), "
        "per load point; the dotted line marks p99.",
    ),
    (
        "Tokens/s per request against total tokens/s",
        figures.tokens_per_s_tradeoff,
        "Each load point's total output tokens per second against the pace one request gets "
        "(1 / TPOT, median): more sequences in flight raise the total and slow each one.",
    ),
    (
        "Goodput against offered rate",
        figures.goodput_vs_offered,
        "Requests per second completed (throughput) and completed within the TTFT and TPOT "
        "SLOs (goodput), against the rate offered (achieved rate for closed-loop points).",
    ),
)


def figure_panels(df: pd.DataFrame) -> list[dict]:
    """Each figure as an embedded PNG, with a title and caption; none without measured points
    (the time series only where a trace point was measured, the cache's where a cache ran, the
    token figures where a generative model streamed)."""
    measured = _measured(df)
    if measured.empty:
        return []
    traced = "scenario" in df.columns and (df["scenario"].astype(str) == "trace").any()
    shown = [figure for figure in FIGURES if figure[1] is not figures.timeline or traced]
    if "cache_hit_ratio" in measured and measured["cache_hit_ratio"].notna().any():
        shown.append(CACHE_FIGURE)
    if "ttft_p50_ms" in measured and measured["ttft_p50_ms"].notna().any():
        shown.extend(GENERATIVE_FIGURES)
        if not ("goodput_qps" in measured and measured["goodput_qps"].notna().any()):
            shown.remove(GENERATIVE_FIGURES[2])
    return [
        {"title": title, "caption": caption, "src": png_data_uri(plot(df))}
        for title, plot, caption in shown
    ]


def png_data_uri(fig: Figure) -> str:
    """A figure as a `data:` URI, so the report needs no files beside it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, facecolor="white", bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def verdicts(df: pd.DataFrame) -> list[dict]:
    """Each measured point's verdict, reasons and recommendation."""
    return [
        {
            "config": row["config_label"],
            "label": _cell(row, "label"),
            "badge": _badge(row),
            "reasons": [reason for _, reason in failed_rules(row)],
            "recommendation": _cell(row, "recommendation"),
        }
        for _, row in _measured(df).iterrows()
    ]


def verdict_table(df: pd.DataFrame) -> pd.DataFrame:
    """Each load point's verdict as a table: configuration, point, VALID / INVALID / FAILED,
    why (the failed rules' reasons, or the error) and what to do."""
    df = _prepare(df)
    return pd.DataFrame(
        [
            {
                "configuration": row["config_label"],
                "point": _cell(row, "label"),
                "verdict": _badge(row),
                "why": "; ".join(reason for _, reason in failed_rules(row))
                if _badge(row) != "FAILED"
                else _cell(row, "error"),
                "what to do": _cell(row, "recommendation"),
            }
            for _, row in df.iterrows()
        ],
        columns=["configuration", "point", "verdict", "why", "what to do"],
    )


def failures(df: pd.DataFrame) -> list[dict]:
    """Points that failed to run, with the error each stored."""
    failed = df[df["status"].astype(str) != "measured"]
    return [
        {
            "config": row["config_label"],
            "label": _cell(row, "label"),
            "error": _cell(row, "error") if _cell(row, "error") != DASH else "no error recorded",
        }
        for _, row in failed.iterrows()
    ]


# --- method and assumptions --------------------------------------------------------------------


def method(df: pd.DataFrame, source: Path) -> dict:
    """The method, the verdict rules as judged, each host's fingerprint and run config."""
    return {
        "percentile_method": PERCENTILE_METHOD,
        "rule_sets": rule_sets(df),
        "hosts": hosts(df),
        "runs": runs(df, source),
    }


def rule_sets(df: pd.DataFrame) -> list[dict]:
    """The verdict rules as the points were judged by them (`verdict_rules`), once per distinct
    set of rules stored, with the scenarios judged by it."""
    sets: dict[tuple[str, ...], set[str]] = {}
    for _, row in df.iterrows():
        rules = verdict_rules(row)
        if not rules:
            continue
        texts = tuple(str(rule.get("rule", "")) for rule in rules)
        sets.setdefault(texts, set()).add(_cell(row, "scenario"))
    return [
        {"scenarios": ", ".join(sorted(scenarios)), "rules": list(texts)}
        for texts, scenarios in sets.items()
    ]


def hosts(df: pd.DataFrame) -> list[dict]:
    """Each distinct host fingerprint in the data, as (name, value) pairs of what is stored."""
    present = [(key, name) for key, name in HOST_FIELDS if key in df.columns]
    if not present:
        return []
    keys = [key for key, _ in present]
    fingerprints = df[keys].astype(str).drop_duplicates().index
    return [
        {
            "name": _cell(df.loc[i], "host_name") if "host_name" in keys else f"host {n + 1}",
            "facts": [
                (name, _host_value(key, df.loc[i, key]))
                for key, name in present
                if not _missing(df.loc[i, key])
            ],
        }
        for n, i in enumerate(fingerprints)
    ]


def _host_value(key: str, value: object) -> str:
    if key == "host_versions":
        parsed = _json(value)
        if isinstance(parsed, dict):
            return ", ".join(f"{k} {v}" for k, v in sorted(parsed.items()))
    if key == "host_mem_gb" and _finite(value) is not None:
        return f"{float(value):,.1f}"  # type: ignore[arg-type]
    return str(value)


def runs(df: pd.DataFrame, source: Path) -> list[dict]:
    """Each run folder, relative to the report, with its full configuration."""
    if "run_dir" not in df.columns:
        return []
    out = []
    for run_dir, group in df.groupby("run_dir", sort=True):
        configs = group["config"].dropna() if "config" in group.columns else pd.Series([])
        parsed = _json(configs.iloc[0]) if len(configs) else None
        out.append(
            {
                "folder": os.path.relpath(str(run_dir), str(source)),
                "points": len(group),
                "config": json.dumps(parsed, indent=2, sort_keys=True) if parsed else "",
            }
        )
    return out


# --- the plan ----------------------------------------------------------------------------------

SIZING_COLUMNS = (
    ("server", "server", str),
    ("configuration", "configuration", str),
    ("host", "measured on", str),
    ("workers_per_server", "replicas / server", _format_int),
    ("replicas_per_server", "replicas / server", _format_int),  # a generative plan's
    ("capacity_qps", "capacity qps", _format_qps),
    ("capacity_qps_low", "low", _format_qps),
    ("capacity_qps_high", "high", _format_qps),
    # A generative plan's: at the TTFT and TPOT SLOs.
    ("capacity_output_tokens_per_s", "output tokens/s", _format_int),
    ("servers", "servers", _format_int),
    ("cache_hit_ratio", "cache hits", _format_share),
    ("servers_without_cache", "without cache", _format_int),
    ("monthly_cost_eur", "EUR / month", _format_int),
    ("cost_per_million_output_tokens_eur", "EUR / M output tokens", _format_eur),
    ("tag", "estimate", str),
)


def plan_section(plan: Plan | None) -> dict | None:
    """The plan stored beside the results (`bench.capacity.store`), if there is one: first the
    best configuration per catalog server (the planner sizes from valid points only), the
    other configurations one click away, and each configuration that could not be sized,
    named, with why."""
    if plan is None:
        return None
    sizing = plan.sizing
    several_hosts = "host_id" in sizing.columns and sizing["host_id"].nunique() > 1
    shown = [
        c for c in SIZING_COLUMNS if c[0] in sizing.columns and (c[0] != "host" or several_hosts)
    ]
    sized = ranked_sizing(sizing)
    best = sized.drop_duplicates("server_id") if "server_id" in sized else sized
    others = sized.drop(best.index)
    unsized = sizing.drop(sized.index) if not sizing.empty else sizing

    def rows(table: pd.DataFrame) -> list[list[str]]:
        return [[fmt(row[key]) for key, _, fmt in shown] for _, row in table.iterrows()]

    return {
        "recommendation": plan.recommendation,
        # The planner sized something (it sizes only from valid points); else a warning.
        "recommended": not sized.empty,
        "serverless": plan.break_even,
        "headers": [header for _, header, _ in shown],
        "rows": rows(best),
        "other_rows": rows(others),
        "unsized": unsized_lines(unsized, several_hosts, _count(sizing, "server_id")),
        "chart": png_data_uri(figures.sizing_chart(best)) if not best.empty else None,
        "formula": plan.formula,
        "tables": [
            {
                "title": title,
                "headers": list(table.columns),
                "rows": table.fillna("").values.tolist(),
            }
            for title, table in plan.tables.items()
        ],
        "folder": str(plan.folder),
        "manifests": bool(plan.manifests),
        # Sized at TTFT and TPOT SLOs from measured rates, not by simulating service times.
        "generative": "capacity_output_tokens_per_s" in sizing.columns,
        "autoscaling": _autoscaling(plan),
        "pod_check": plan.pod_check_sentence,
        "checked": _checked(plan),
    }


def _checked(plan: Plan) -> dict | None:
    """Another plan's prediction for its pod beside what the pod sustained in this run."""
    if plan.checked.empty:
        return None
    row = plan.checked.iloc[0]
    measured = row["measured_qps"]
    sustained = (
        f"sustained {measured:.1f} requests/s ({row['measured_from']}): the prediction was "
        f"{row['error_pct']:+.1f}% off, {'inside' if row['in_band'] else 'outside'} its band"
        if pd.notna(measured) and measured > 0
        else "sustained no rate within the SLO at a valid point"
    )
    return {
        "sentence": (
            f"The plan in {row['plan']} predicted {row['predicted_qps']:.1f} requests/s (band "
            f"{row['predicted_low_qps']:.1f}-{row['predicted_high_qps']:.1f}) for its pod "
            f"({row['pod']}; {row['configuration']}) on {row['host']}. Measured here under the "
            f"pod's limits, it {sustained}."
        ),
    }


def _autoscaling(plan: Plan) -> dict | None:
    """The HPA simulation the plan stored: its sentence, the cases in sum, the figure."""
    if plan.autoscaling.empty:
        return None
    settings = plan.autoscaling_settings
    shown = settings[settings["case"] != "tried"] if "case" in settings else settings
    columns = (
        ("case", "case", str),
        ("trace", "trace", str),
        ("min_replicas", "min", _format_int),
        ("max_replicas", "max", _format_int),
        ("target_utilization", "target CPU", _format_share),
        ("slo_share", "SLO met", _format_share),
        ("peak_replicas", "peak replicas", _format_int),
        ("replica_hours", "replica-hours", _formatter(lambda v: f"{v:.3g}")),
        ("cost_eur_per_month", "EUR / month", _format_int),
        ("cold_starts", "cold starts", _format_int),
        ("cost_per_month", "serverless / month", _format_int),
        ("currency", "currency", _format_text),
    )
    present = [c for c in columns if c[0] in shown.columns]
    return {
        "sentence": plan.autoscaling_sentence,
        "headers": [header for _, header, _ in present],
        "rows": [[fmt(row[key]) for key, _, fmt in present] for _, row in shown.iterrows()],
        "src": png_data_uri(figures.autoscaling(plan.autoscaling)),
    }


def ranked_sizing(sizing: pd.DataFrame) -> pd.DataFrame:
    """The sized rows, best first, as the planner recommends: the cheapest a month where
    priced; else the fewest cores in all (servers x cores, a proxy for cost); then the fewest
    servers."""
    if sizing.empty or "servers" not in sizing.columns:
        return sizing[:0]
    sized = sizing[sizing["servers"].notna()]
    cores = sized["servers"] * sized["cores"] if "cores" in sized else sized["servers"]
    ranked = sized.assign(_cores=cores)
    order = [c for c in ("monthly_cost_eur", "_cores", "servers") if c in ranked.columns]
    ranked = ranked.sort_values(order, na_position="last", kind="stable")
    return ranked.drop(columns="_cores")


def _count(table: pd.DataFrame, column: str) -> int:
    return int(table[column].nunique()) if column in table.columns else 0


def unsized_lines(
    unsized: pd.DataFrame, several_hosts: bool = False, catalog_servers: int = 0
) -> list[str]:
    """One line per configuration (and measuring host, where several) and reason: which
    configuration could not be sized, on which servers (`catalog_servers`: how many the
    catalog holds), and why."""
    if unsized.empty:
        return []
    keys = [k for k in ("configuration", "host") if k in unsized.columns]
    keys = keys if several_hosts else keys[:1]
    table = unsized.assign(
        unsized_reason=unsized.get("unsized_reason", pd.Series("", index=unsized.index))
        .fillna("no reason recorded")
        .astype(str)
    )
    lines = []
    for key, group in table.groupby([*keys, "unsized_reason"], sort=True, dropna=False):
        *names, reason = key if isinstance(key, tuple) else (key,)
        who = " on ".join(str(n) for n in names) or "a configuration"
        servers = sorted(group["server"].astype(str).unique()) if "server" in group else []
        if servers and len(servers) == catalog_servers:
            where = f"every catalog server ({len(servers)})"
        elif len(servers) > 3:
            where = f"{len(servers)} servers ({', '.join(servers[:3])}, ...)"
        else:
            where = ", ".join(servers) or "every server"
        lines.append(f"{who}, on {where}: {reason}")
    return lines
