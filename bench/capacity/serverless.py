"""Serverless cost: what pay-per-use pricing charges for the GB-seconds and requests a load
point used, and the request rate above which a dedicated deployment costs less. Pure functions
of the usage the `serverless` runner stored (`gb_seconds_busy`, `gb_seconds_lifetime`,
`invocations`) and of the prices in `catalog.serverless_pricing`, dated and with their source:
a price change is a re-plan, not a re-measure."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
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


def usage_cost_per_million(results: pd.DataFrame, pricing: Mapping[str, Any]) -> float:
    """What a million requests of the model in `results` cost serverless at `pricing`: the
    median over its VALID serverless points of their measured usage (cold starts included);
    with none, an estimate from its valid dedicated points: each request billed for its median
    compute time at the point's peak memory, with no cold start (a floor: cold starts only add).
    NaN with no valid point or an unknown price."""
    valid = results[results.get("valid", pd.Series(False, index=results.index)).eq(True)]
    measured = serverless_costs(valid, pricing)
    if not measured.empty and measured["cost_per_million"].notna().any():
        return float(measured["cost_per_million"].median())
    rows = valid.dropna(subset=["rss_peak_mb"])
    busy_ms = rows.get("server_compute_p50_ms", rows.get("latency_p50_ms"))
    if rows.empty or busy_ms is None or busy_ms.isna().all():
        return math.nan
    gb_seconds = float((rows["rss_peak_mb"] / 1024 * busy_ms / 1000).median())
    return cost_per_million(
        gb_seconds,
        1,
        _price(pricing.get("per_gb_second")),
        _price(pricing.get("per_million_requests")),
    )


def break_even_curve(
    rates_qps: Iterable[float],
    capacity_qps: float,
    monthly_cost_per_server: float,
    serverless_cost_per_million: float,
    seconds_per_month: float,
    headroom: float = 0.3,
    min_servers: int = 1,
) -> pd.DataFrame:
    """Monthly cost of serving each steady arrival rate in `rates_qps`, dedicated and
    serverless, in one currency: dedicated, the servers `ceil(rate * (1 + headroom) /
    capacity_qps)` (at least `min_servers`) at `monthly_cost_per_server` each; serverless, the
    requests at `serverless_cost_per_million`. Columns rate_qps, servers, dedicated, serverless,
    cheaper ("dedicated" or "serverless")."""
    rows = []
    for rate in rates_qps:
        servers = max(min_servers, math.ceil(rate * (1 + headroom) / capacity_qps))
        dedicated = servers * monthly_cost_per_server
        serverless = serverless_cost_per_million * rate * seconds_per_month / 1e6
        rows.append(
            {
                "rate_qps": float(rate),
                "servers": servers,
                "dedicated": dedicated,
                "serverless": serverless,
                "cheaper": "serverless" if serverless < dedicated else "dedicated",
            }
        )
    return pd.DataFrame(rows, columns=["rate_qps", "servers", "dedicated", "serverless", "cheaper"])
