"""Serverless cost: what pay-per-use pricing charges for the GB-seconds and requests a load
point used, and the request rate above which a dedicated deployment costs less. Pure functions
of the usage the `serverless` runner stored (`gb_seconds_busy`, `gb_seconds_lifetime`,
`invocations`) and of the prices in `catalog.serverless_pricing`, dated and with their source:
a price change is a re-plan, not a re-measure."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

# What `billed_time` names -> the usage column that holds those GB-seconds.
BILLED_USAGE = {"busy": "gb_seconds_busy", "lifetime": "gb_seconds_lifetime"}
# Columns that say which point a cost belongs to, where the results have them.
_POINT = (
    "run_id",
    "point_id",
    "host_name",
    "model",
    "backend",
    "optimization",
    "strategy",
    "label",
)
_USAGE = ("invocations", "cold_starts", "cold_start_fraction")


def cost_per_million(
    gb_seconds: float,
    requests: int,
    per_gb_second: float | None,
    per_million_requests: float | None,
) -> float:
    """The cost of a million requests at what `requests` requests used: GB-seconds at
    `per_gb_second` plus each request at `per_million_requests` / 1e6. NaN with no request or
    a price unknown (None): no number is better than an invented one."""
    if requests <= 0 or per_gb_second is None or per_million_requests is None:
        return math.nan
    total = gb_seconds * per_gb_second + requests * per_million_requests / 1e6
    return total / requests * 1e6


def break_even_qps(
    cost_per_million: float, dedicated_monthly_cost: float, seconds_per_month: float
) -> float:
    """The steady request rate (per second) above which a dedicated deployment costing
    `dedicated_monthly_cost` a month is cheaper than serverless at `cost_per_million` requests,
    both in one currency (`bench.capacity.planner.SECONDS_PER_MONTH` for the month).

    Assumes the serverless cost per request stays as measured: at another rate the share of
    cold starts, and so the cost per request, differs. Whether the dedicated servers meet the
    SLO at that rate is the planner's sizing, not this function's. NaN where a cost is unknown;
    infinite where serverless costs nothing per request."""
    if not (math.isfinite(cost_per_million) and math.isfinite(dedicated_monthly_cost)):
        return math.nan
    if cost_per_million <= 0:
        return math.inf
    return dedicated_monthly_cost / (cost_per_million / 1e6 * seconds_per_month)


def serverless_costs(results: pd.DataFrame, pricing: Mapping[str, Any]) -> pd.DataFrame:
    """Per measured serverless point: its usage and its cost per million requests at `pricing`
    (`catalog.serverless_pricing`: currency, per_gb_second, per_million_requests, billed_time,
    as_of, source), with the prices beside it. Empty when no serverless point was measured."""
    if results.empty or "strategy" not in results:
        return pd.DataFrame()
    rows = results[(results["strategy"] == "serverless") & (results.get("status") == "measured")]
    if rows.empty:
        return pd.DataFrame()
    billed_time = str(pricing.get("billed_time", "busy"))
    usage = BILLED_USAGE.get(billed_time)
    if usage is None:
        raise ValueError(f"billed_time: accepted {', '.join(BILLED_USAGE)}; got {billed_time!r}")
    per_gb_second = _price(pricing.get("per_gb_second"))
    per_million_requests = _price(pricing.get("per_million_requests"))
    table = rows.reindex(columns=[*_POINT, *_USAGE]).reset_index(drop=True)
    billed = rows.reindex(columns=[usage])[usage].to_numpy(dtype=float)
    table["billed_time"] = billed_time
    table["gb_seconds_billed"] = billed
    table["cost_per_million"] = [
        cost_per_million(gb_s, int(n), per_gb_second, per_million_requests)
        if math.isfinite(gb_s) and pd.notna(n)
        else math.nan
        for gb_s, n in zip(billed, table["invocations"], strict=True)
    ]
    table["currency"] = str(pricing.get("currency", ""))
    table["per_gb_second"] = per_gb_second if per_gb_second is not None else math.nan
    table["per_million_requests"] = (
        per_million_requests if per_million_requests is not None else math.nan
    )
    table["pricing_as_of"] = str(pricing.get("as_of", ""))
    table["pricing_source"] = str(pricing.get("source", ""))
    return table


def _price(value: Any) -> float | None:
    return (
        None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    )
