"""`slo_search`: the highest Poisson rate whose latency percentile meets the SLO.

A closed-loop probe first estimates the saturation throughput; then each `server` point's rate
is chosen from the points measured so far, by interpolating the percentile between the highest
passing and the lowest failing rate (bisection when it cannot). Small pure functions over the
measured history, so the search is tested without a server.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# The probe keeps this many requests outstanding per worker, to find the saturation rate.
PROBE_CONCURRENCY = 4


@dataclass(frozen=True)
class Trial:
    """One measured server point: its offered rate, its percentile, and whether it passed."""

    rate: float
    percentile_ms: float
    passed: bool


def passed(row: dict, slo_ms: float, percentile: str, max_late_fraction: float) -> bool:
    """A rate passes when its percentile meets the SLO with no errors and with the client's
    connections not holding sends back (the load was offered).

    Late sends from the generator itself do not fail a rate: latency is counted from the
    intended send time, so their delay is already inside the percentile, and a pass despite
    them is conservative. With the model in the generator's process on 2 cores, 1-4% of sends
    ran over 1 ms late here at every rate, which would fail them all. Window-to-window
    instability does not fail a rate either: on a noisy host it would drive the search down
    for reasons that are not the system's capacity. Both still show in each point's verdict."""
    observed = row.get(f"latency_{percentile}_ms", math.nan)
    return (
        row.get("status") == "measured"
        and observed <= slo_ms
        and row.get("errors", 1) == 0
        and row.get("blocked_send_fraction", 0.0) <= max_late_fraction
    )


def attainment_of(percentile: str) -> float:
    """The share of requests a generative point must serve within its SLOs, from the scenario's
    `slo_percentile` ("p99": 0.99, "p999": 0.999)."""
    digits = percentile[1:]
    return float(f"0.{digits}")


def goodput_passed(row: dict, percentile: str, max_late_fraction: float) -> bool:
    """A generative rate passes when at least `percentile` of its requests met the TTFT and TPOT
    SLOs (its goodput is that share of its rate; a failed request meets none), with the
    client's connections not holding sends back."""
    return (
        row.get("status") == "measured"
        and row.get("slo_attainment", math.nan) >= attainment_of(percentile)
        and row.get("blocked_send_fraction", 0.0) <= max_late_fraction
    )


def bracket(trials: Sequence[Trial]) -> tuple[Trial | None, Trial | None]:
    """(highest passing trial, lowest failing trial above it)."""
    lo = max((t for t in trials if t.passed), key=lambda t: t.rate, default=None)
    above = [t for t in trials if not t.passed and (lo is None or t.rate > lo.rate)]
    hi = min(above, key=lambda t: t.rate, default=None)
    return lo, hi


def highest_passing_rate(trials: Sequence[Trial]) -> float | None:
    """The capacity the search established: its highest passing rate (None if none passed)."""
    lo, _ = bracket(trials)
    return lo.rate if lo else None


def next_rate(
    trials: Sequence[Trial],
    slo_ms: float,
    saturation_qps: float,
    tolerance: float,
    max_trials: int,
    min_qps: float = 0.1,
) -> float | None:
    """The next rate to try, or None when the bracket is within `tolerance` (relative), the
    trial budget is spent, or no rate down to `min_qps` meets the SLO."""
    if len(trials) >= max_trials:
        return None
    lo, hi = bracket(trials)
    if lo is None and hi is None:
        return 0.5 * saturation_qps
    if hi is None:
        # Everything so far passed: climb, past the probe's estimate if need be.
        return lo.rate * (1.5 if lo.rate < saturation_qps else 1.2)
    if lo is None:
        rate = hi.rate / 2.0
        return rate if rate >= min_qps else None
    if hi.rate / lo.rate - 1.0 <= tolerance:
        return None
    rate = (lo.rate + hi.rate) / 2.0
    if hi.percentile_ms > lo.percentile_ms and math.isfinite(hi.percentile_ms):
        # Where the line through the two measured percentiles crosses the SLO.
        rate = lo.rate + (slo_ms - lo.percentile_ms) * (hi.rate - lo.rate) / (
            hi.percentile_ms - lo.percentile_ms
        )
    # Stay strictly inside the bracket, so each trial narrows it.
    margin = 0.1 * (hi.rate - lo.rate)
    return min(max(rate, lo.rate + margin), hi.rate - margin)
