"""The tier comparison: one self-contained HTML page putting hardware tiers side by side, from
the results of any number of run or sweep folders (any hosts) and the plan made over all of
them (`bench.capacity.store`: the sizing per tier and the cross-tier predictions). Per tier:
the best valid configuration and its capacity at the SLO, the cost per million requests where
prices are known, the latency distribution, the sizing, how well the other tiers predicted it,
and the tier's fingerprint. Every figure and headline draws on valid points only."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from bench.capacity.store import Plan
from bench.results import derived_tier
from reports import figures
from reports.build import (
    _environment,
    _format_int,
    _format_ms,
    _format_qps,
    _measured,
    _plural,
    _prepare,
    _valid,
    _with_costs,
    png_data_uri,
    ranked_sizing,
    read_plan,
)

COMPARISON_FILE = "report.html"
# The comparison's name beside a run or sweep folder's own report.html.
TIERS_FILE = "tiers.html"
TEMPLATE = "compare.html.j2"
TIER = "tier"

# A tier's fingerprint: what it ran on, how it was narrowed, and how it was calibrated.
FINGERPRINT = (
    ("host_name", "host"),
    ("host_cpu_model", "CPU"),
    ("host_cores", "logical cores"),
    ("host_physical_cores", "physical cores"),
    ("host_isa", "ISA"),
    ("host_mem_gb", "memory (GB)"),
    ("host_gpu", "GPU"),
    ("cpu_limit", "CPU limit (cores)"),
    ("memory_limit_mb", "memory limit (MB)"),
    ("limits_note", "limits"),
    ("isolation", "isolation"),
    ("calib_fp32_gflops_per_thread", "calibration: fp32 GFLOP/s per thread"),
    ("calib_int8_gops_per_thread", "calibration: int8 GOP/s per thread"),
    ("calib_mem_bandwidth_gbs", "calibration: memory bandwidth (GB/s)"),
    ("calib_method", "calibration: method"),
)


def tiers(df: pd.DataFrame) -> pd.Series:
    """Each row's tier: the `tier` it carries (`bench.results.load` gives every row one), or
    for a row without, the label its own columns derive (`bench.results.derived_tier`)."""
    stored = df[TIER] if TIER in df.columns else pd.Series(None, index=df.index, dtype=object)
    missing = stored.isna() | stored.astype(str).str.strip().eq("")
    if not missing.any():
        return stored.astype(str)
    derived = pd.Series(
        [derived_tier(row) for row in df[missing].to_dict("records")], index=df.index[missing]
    )
    return stored.astype(object).where(~missing, derived).astype(str)


DEPLOYABLE = ("model", "backend", "optimization", "strategy")


def deployable_labels(df: pd.DataFrame) -> pd.Series:
    """Each row's deployable configuration, "model / backend / optimization / strategy"."""
    fields = [c for c in DEPLOYABLE if c in df.columns]
    return df[fields].astype(str).agg(" / ".join, axis=1) if fields else df.index.astype(str)


def build_comparison(df: pd.DataFrame, folder: str | os.PathLike, name: str = "") -> Path:
    """Write the tier comparison of `df` as `folder/<name or report.html>`, with the plan
    stored in `folder` (if any); return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / (name or COMPARISON_FILE)
    page.write_text(render_comparison(df, read_plan(folder), folder), encoding="utf-8")
    return page


def render_comparison(df: pd.DataFrame, plan: Plan | None, source: Path) -> str:
    """The comparison's HTML for results `df` and the plan made over them."""
    return _environment().get_template(TEMPLATE).render(**comparison_context(df, plan, source))


def prepare(df: pd.DataFrame, plan: Plan | None = None) -> pd.DataFrame:
    """Results as the comparison reads them: each row's `tier`, its deployable configuration
    (`config_label`), and its serverless cost where the plan priced it."""
    df = _prepare(_with_costs(df, plan))
    # A tier is a column of its own here: configurations are named by what is deployed.
    return df.assign(tier=tiers(df), config_label=deployable_labels(df))


def tier_table(df: pd.DataFrame, plan: Plan | None = None) -> pd.DataFrame:
    """One row per tier, the most capacity first: its best valid configuration and point, the
    capacity at the SLO with its windows' band, p99, how many points were valid, and the
    cheapest cost per million requests known (NaN where no price is)."""
    df = prepare(df, plan)
    best = best_per_tier(df).set_index(TIER)
    cost = tier_costs(tier_sizing(plan, df), df)
    rows = []
    for tier in list(best.index) + sorted(set(df[TIER]) - set(best.index)):
        measured = _measured(df[df[TIER] == tier])
        row = best.loc[tier] if tier in best.index else pd.Series(dtype=object)
        costs = cost[cost[TIER] == tier].sort_values("cost_per_million")
        rows.append(
            {
                TIER: tier,
                "configuration": row.get("config_label", np.nan),
                "point": row.get("label", np.nan),
                "capacity_qps": row.get("achieved_qps", np.nan),
                "capacity_low_qps": row.get("capacity_low", np.nan),
                "capacity_high_qps": row.get("capacity_high", np.nan),
                "latency_p99_ms": row.get("latency_p99_ms", np.nan),
                "valid_points": int(_valid(measured).sum()),
                "measured_points": len(measured),
                "cost_per_million": costs["cost_per_million"].iloc[0] if len(costs) else np.nan,
                "cost_currency": costs["currency"].iloc[0] if len(costs) else "",
                "cost_of": costs["what"].iloc[0] if len(costs) else "",
            }
        )
    return pd.DataFrame(rows)


def best_points(df: pd.DataFrame, plan: Plan | None = None) -> pd.DataFrame:
    """Each tier's fastest valid point (rows of `df`, with `tier`), the most capacity first."""
    return best_per_tier(prepare(df, plan))


def capacity_table(df: pd.DataFrame, plan: Plan | None = None) -> pd.DataFrame:
    """The capacity figure's bars: per tier, measured and predicted from each other tier."""
    return tier_capacity(best_points(df, plan), _cross_tier(plan))


def cost_table(df: pd.DataFrame, plan: Plan | None = None) -> pd.DataFrame:
    """Per tier, dedicated and serverless cost per million requests where prices are known."""
    prepared = prepare(df, plan)
    return tier_costs(tier_sizing(plan, prepared), prepared)


def cross_tier_table(plan: Plan | None) -> pd.DataFrame:
    """The plan's cross-tier predictions (empty where it holds none)."""
    return _cross_tier(plan)


def comparison_context(df: pd.DataFrame, plan: Plan | None, source: Path) -> dict:
    """Everything the comparison shows, as plain data: the template only lays it out."""
    df = prepare(df, plan)
    best = best_per_tier(df)
    sizing = tier_sizing(plan, df)
    cost = tier_costs(sizing, df)
    cross = _cross_tier(plan)
    capacity = tier_capacity(best, cross)
    panels = _panels(df, best, capacity, cost, cross)
    return {
        "title": f"Hardware tiers compared: {_plural(df[TIER].nunique(), 'tier')}",
        "source": str(source),
        "summary": _summary(df),
        "headline": tier_headline(best, cost),
        "headline_ok": not best.empty,
        "tiers": _tier_rows(df, best, cost),
        "figures": panels,
        "sizing": _sizing_rows(sizing),
        "cross_tier": _cross_rows(cross),
        "recommendation": plan.recommendation if plan is not None else "",
        "fingerprints": fingerprints(df),
        "folders": sorted({str(Path(str(d))) for d in df.get("run_dir", pd.Series([], dtype=str))}),
    }


# --- per tier ----------------------------------------------------------------------------------


def best_per_tier(df: pd.DataFrame) -> pd.DataFrame:
    """Per tier, its fastest VALID point (valid: every rule held, the SLO among them), with its
    throughput's band across the point's windows; tiers with no valid point are left out."""
    rows = _measured(df)
    rows = rows[_valid(rows)].dropna(subset=["achieved_qps"])
    if rows.empty:
        return rows.assign(capacity_low=[], capacity_high=[])
    best = rows.loc[rows.groupby(TIER)["achieved_qps"].idxmax()]
    low, high = zip(*(_window_band(r) for _, r in best.iterrows()), strict=True)
    return best.assign(capacity_low=low, capacity_high=high).sort_values(
        "achieved_qps", ascending=False
    )


def _window_band(row: pd.Series) -> tuple[float, float]:
    """The lowest and highest throughput of the point's measured windows (its own spread)."""
    windows = row.get("window_qps")
    if windows is None or isinstance(windows, (str, float, int)):
        return np.nan, np.nan
    values = np.asarray(list(windows), dtype=float)
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if len(values) else (np.nan, np.nan)


def tier_sizing(plan: Plan | None, df: pd.DataFrame) -> pd.DataFrame:
    """The plan's sizing rows with the tier each was measured on: its own `tier` column where
    the plan stores one, else the tier of the host that measured it."""
    sizing = plan.sizing if plan is not None else pd.DataFrame()
    if sizing.empty:
        return sizing
    if TIER in sizing.columns:
        return sizing
    # The planner sizes per measuring host: where one host ran several tiers, its sizing
    # pools them, and is labelled with them all.
    by_host = df.groupby("host_name")[TIER].agg(lambda t: " + ".join(sorted(set(t))))
    return sizing.assign(tier=sizing["host"].map(by_host).fillna(sizing["host"]).astype(str))


def tier_costs(sizing: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """Per tier, what a million requests cost: dedicated, the cheapest priced catalog server
    sized from that tier's measurements (at the plan's target, band from its server count's
    band); serverless, the median of the tier's serverless points priced by the plan."""
    rows = []
    sized = ranked_sizing(sizing)
    if "cost_per_million_eur" in sized.columns:
        priced = sized[sized["cost_per_million_eur"].notna()]
        for tier, group in priced.groupby(TIER, sort=True):
            row = group.iloc[0]
            cost = float(row["cost_per_million_eur"])
            high = cost * float(row.get("servers_high", row["servers"])) / float(row["servers"])
            rows.append(
                {
                    TIER: tier,
                    "kind": "dedicated",
                    "what": f"{int(row['servers'])} x {row['server']} ({row['configuration']})",
                    "cost_per_million": cost,
                    "cost_low": cost,
                    "cost_high": high,
                    "currency": "EUR",
                }
            )
    if "serverless_cost_per_million" in df.columns:
        rows_sl = _measured(df).dropna(subset=["serverless_cost_per_million"])
        rows_sl = rows_sl[_valid(rows_sl)]
        for tier, group in rows_sl.groupby(TIER, sort=True):
            costs = group["serverless_cost_per_million"].astype(float)
            currency = str(group.get("serverless_cost_currency", pd.Series(["?"])).iloc[0])
            rows.append(
                {
                    TIER: tier,
                    "kind": "serverless",
                    "what": f"serverless, {group.iloc[0]['config_label']}",
                    "cost_per_million": float(costs.median()),
                    "cost_low": float(costs.min()),
                    "cost_high": float(costs.max()),
                    "currency": currency.upper(),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[TIER, "kind", "what", "cost_per_million", "cost_low", "cost_high", "currency"],
    )


def _cross_tier(plan: Plan | None) -> pd.DataFrame:
    """The plan's cross-tier predictions: each measured tier's capacity predicted from another
    tier's measurement, beside the capacity measured."""
    table = getattr(plan, "cross_tier", None) if plan is not None else None
    return table if isinstance(table, pd.DataFrame) else pd.DataFrame()


def tier_capacity(best: pd.DataFrame, cross: pd.DataFrame) -> pd.DataFrame:
    """Tidy bars for the capacity figure: per tier, the capacity measured (band: its windows)
    and each prediction of it from another tier (band: the prediction's)."""
    rows = [
        {
            TIER: row[TIER],
            "source": "measured",
            "qps": row["achieved_qps"],
            "low": row["capacity_low"],
            "high": row["capacity_high"],
        }
        for _, row in best.iterrows()
    ]
    needed = {"to_tier", "from_tier", "predicted_qps"}
    if not cross.empty and needed <= set(cross.columns):
        for _, row in cross.iterrows():
            rows.append(
                {
                    TIER: row["to_tier"],
                    "source": f"predicted from {row['from_tier']}",
                    "qps": row["predicted_qps"],
                    "low": row.get("predicted_low_qps", np.nan),
                    "high": row.get("predicted_high_qps", np.nan),
                }
            )
    return pd.DataFrame(rows, columns=[TIER, "source", "qps", "low", "high"])


def tier_headline(best: pd.DataFrame, cost: pd.DataFrame) -> str:
    """One sentence: the tier with the most capacity at the SLO, and the cheapest per million
    requests where prices are known; or that no tier has a valid point."""
    if best.empty:
        return (
            "No tier has a valid load point: nothing here is a capacity to compare (see each "
            "run's report for the verdicts)."
        )
    top = best.iloc[0]
    sentence = (
        f"Most capacity at the SLO: {top[TIER]}, {_format_qps(top['achieved_qps'])} requests/s "
        f"with {top['config_label']} (p99 {_format_ms(top.get('latency_p99_ms'))} ms)"
    )
    if len(best) > 1:
        last = best.iloc[-1]
        ratio = float(top["achieved_qps"]) / float(last["achieved_qps"])
        sentence += f", {ratio:.1f}x {last[TIER]}"
    if not cost.empty:
        cheapest = cost.sort_values("cost_per_million").iloc[0]
        sentence += (
            f"; cheapest per million requests: {cheapest[TIER]}, "
            f"{cheapest['currency']} {cheapest['cost_per_million']:,.2f} ({cheapest['what']})"
        )
    return sentence + "."


def _summary(df: pd.DataFrame) -> str:
    measured = _measured(df)
    valid = int(_valid(measured).sum())
    runs = df["run_dir"].nunique() if "run_dir" in df.columns else 1
    hosts = df["host_name"].nunique() if "host_name" in df.columns else 1
    return (
        f"{_plural(len(df), 'load point')} from {_plural(runs, 'run')} on "
        f"{_plural(hosts, 'host')}, {_plural(df[TIER].nunique(), 'tier')}: {valid} valid, "
        f"{len(measured) - valid} invalid, {len(df) - len(measured)} failed. Capacities, costs "
        "and figures draw on valid points only."
    )


def _tier_rows(df: pd.DataFrame, best: pd.DataFrame, cost: pd.DataFrame) -> list[dict]:
    """One row per tier, the best first; tiers without a valid point last, saying so."""
    out = []
    by_tier = best.set_index(TIER)
    order = list(best[TIER]) + sorted(set(df[TIER]) - set(best[TIER]))
    for tier in order:
        rows = _measured(df[df[TIER] == tier])
        valid = int(_valid(rows).sum())
        costs = cost[cost[TIER] == tier]
        cost_text = "; ".join(
            f"{c['currency']} {c['cost_per_million']:,.2f} ({c['kind']})"
            for _, c in costs.iterrows()
        )
        entry = {
            "tier": tier,
            "points": f"{valid} of {len(rows)} valid",
            "cost": cost_text or "no price known",
        }
        if tier in by_tier.index:
            row = by_tier.loc[tier]
            band = (
                f"{_format_qps(row['capacity_low'])}–{_format_qps(row['capacity_high'])}"
                if pd.notna(row["capacity_low"])
                else "–"
            )
            entry.update(
                config=row["config_label"],
                point=str(row.get("label", "")),
                qps=_format_qps(row["achieved_qps"]),
                band=band,
                p99=_format_ms(row.get("latency_p99_ms")),
                ok=True,
            )
        else:
            entry.update(config="no valid point", point="–", qps="–", band="–", p99="–", ok=False)
        out.append(entry)
    return out


def _sizing_rows(sizing: pd.DataFrame) -> list[dict]:
    """Per tier, the best catalog server sized from that tier's measurements."""
    sized = ranked_sizing(sizing)
    if sized.empty:
        return []
    best = sized.drop_duplicates(TIER)
    return [
        {
            "tier": row[TIER],
            "server": row["server"],
            "configuration": row["configuration"],
            "servers": _format_int(row["servers"]),
            "band": _format_int(row.get("servers_high")),
            "capacity": _format_qps(row["capacity_qps"]),
            "cost": _format_int(row.get("monthly_cost_eur")),
            "tag": str(row.get("tag", "")),
        }
        for _, row in best.iterrows()
    ]


def _cross_rows(cross: pd.DataFrame) -> list[dict]:
    if cross.empty:
        return []
    return [
        {
            "model": str(row.get("model", "")),
            "configuration": str(row.get("configuration", "")),
            "from": str(row.get("from_tier", "")),
            "to": str(row.get("to_tier", "")),
            "predicted": _format_qps(row.get("predicted_qps")),
            "band": f"{_format_qps(row.get('predicted_low_qps'))}–"
            f"{_format_qps(row.get('predicted_high_qps'))}",
            "measured": _format_qps(row.get("measured_qps"))
            + _ceiling(row.get("measured_ceiling_qps")),
            "error": _format_error(row.get("error_pct")),
        }
        for _, row in cross.iterrows()
    ]


def _ceiling(value: object) -> str:
    """ "(missed at X)": the lowest rate above the measured capacity that missed the SLO."""
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    return "" if pd.isna(number) else f" (missed at {_format_qps(number)})"


def _format_error(value: object) -> str:
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    return "–" if pd.isna(number) else f"{number:+.1f}"


def fingerprints(df: pd.DataFrame) -> list[dict]:
    """Each tier's fingerprint: host, limits and calibration, as stored in its rows."""
    out = []
    for tier, group in df.groupby(TIER, sort=True):
        latest = group.iloc[-1]
        facts = []
        for key, name in FINGERPRINT:
            values = group[key].dropna().astype(str).unique() if key in group else []
            values = [v for v in values if v and v != "nan"]
            if values:
                facts.append((name, _fact(key, latest.get(key), values)))
        out.append({"tier": tier, "facts": facts})
    return out


def _fact(key: str, value: object, values: list[str]) -> str:
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    if key.startswith("calib_") and pd.notna(number):
        text = f"{number:,.1f}"
    else:
        text = values[-1]
    return text if len(values) == 1 else f"{text} (and {len(values) - 1} other value(s))"


# --- figures -----------------------------------------------------------------------------------


def _panels(
    df: pd.DataFrame,
    best: pd.DataFrame,
    capacity: pd.DataFrame,
    cost: pd.DataFrame,
    cross: pd.DataFrame,
) -> list[dict]:
    """The figures that have data to show, each as an embedded PNG with its caption."""
    valid = _measured(df)[_valid(_measured(df))]
    panels = []

    def add(title: str, figure, caption: str) -> None:
        panels.append({"title": title, "caption": caption, "src": png_data_uri(figure)})

    if not capacity.empty:
        add(
            "Capacity per tier",
            figures.tier_capacity(capacity),
            "The highest throughput a valid point sustained on each tier (its SLO held), "
            "whiskers spanning its windows; beside it, the planner's prediction of that "
            "capacity from each other tier's measurement, whiskers spanning the prediction's "
            "band.",
        )
    if not cost.empty:
        add(
            "Cost per million requests",
            figures.tier_cost(cost),
            "Dedicated: the cheapest priced catalog server sized from the tier's measurements, "
            "at the plan's target load (whisker: if the server is at the slow end of its "
            "band). Serverless: the tier's measured usage at the plan's dated prices.",
        )
    if not best.empty:
        add(
            "Latency distributions side by side",
            figures.tier_latency_cdfs(best),
            "The latency distribution of each tier's best valid point, counted from each "
            "request's intended send time; the dotted line marks p99.",
        )
    if not cross.empty and {"measured_qps", "predicted_qps"} <= set(cross.columns):
        add(
            "Cross-tier predictions",
            figures.cross_tier(cross),
            "Each tier's capacity predicted from another tier's measurement and the two "
            "calibrations, against the capacity measured: on the diagonal, the prediction was "
            "right; above it, optimistic (the planner would under-provision); below it, "
            "cautious.",
        )
    if _has_accuracy(valid) and valid["optimization"].nunique() > 1:
        add(
            "Accuracy against speed",
            figures.pareto_front(valid),
            "Each valid configuration's best throughput against its accuracy relative to "
            "fp32; the line joins the Pareto front: none faster without losing accuracy.",
        )
    if valid.groupby("model")["strategy"].nunique().gt(1).any():
        add(
            "Strategies for the same model",
            figures.strategy_comparison(valid),
            "The best valid throughput of each deployment strategy, per tier, for the model "
            "measured under the most strategies.",
        )
    if _has_cold_starts(valid):
        add(
            "Cold starts",
            figures.cold_start_breakdown(valid),
            "Where serverless ran: a cold start split into process start, imports, model "
            "load, first inference and serving set-up, per tier and configuration.",
        )
    return panels


def _has_accuracy(rows: pd.DataFrame) -> bool:
    return any(c in rows.columns and rows[c].notna().any() for c in figures.ACCURACY_COLUMNS)


def _has_cold_starts(rows: pd.DataFrame) -> bool:
    serverless = rows[rows["strategy"] == "serverless"] if "strategy" in rows else rows[:0]
    parts = [c for c, _ in figures.COLD_START_PARTS if c in serverless.columns]
    return bool(parts) and serverless[parts].notna().any().any()
