"""Serverless cost: what pay-per-use pricing charges for the GB-seconds and requests a load
point used, and the request rate above which a dedicated deployment costs less. Pure functions;
the prices come from `strategy.pricing`, dated and with their source."""

from __future__ import annotations

import math

GIB = 2**30  # a platform's "GB" of memory: Lambda bills MB / 1024


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
