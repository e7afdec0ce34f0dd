"""Load points: what one measurement does, expanded from a scenario config."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from bench.config import ScenarioConfig
from bench.load.slo_search import PROBE_CONCURRENCY, Trial, next_rate, passed

CLOSED_LOOP = ("single_stream", "concurrency")
# Open loop with sparse arrivals: a window holds few requests, cold and warm by design.
SPARSE = ("intermittent", "bursty")
# Open loop: sends follow a schedule made before the point starts, whatever the responses do.
OPEN_LOOP = ("server", *SPARSE)
STATIC = ("single_stream", "concurrency", "server", "offline", *SPARSE)
# Fields added after results were first stored: left out of a point's identity while unset, so
# points stored before them keep their ids and a re-run still skips them.
_LATER_FIELDS = ("gap_s", "jitter", "burst_size", "burst_qps", "idle_s")


@dataclass(frozen=True)
class LoadPoint:
    scenario: str
    batch_size: int
    warmup_s: float
    duration_s: float
    seed: int
    concurrency: int | None = None  # closed loop: requests outstanding
    target_qps: float | None = None  # open loop: Poisson arrival rate
    requests: int | None = None  # offline: requests sent at once (None: sized from warm-up)
    connections: int | None = None  # open loop: client connections (None: unlimited)
    gap_s: float | None = None  # intermittent: seconds between requests, on average
    jitter: float | None = None  # intermittent: each gap within +- jitter x gap_s
    burst_size: int | None = None  # bursty: requests per burst
    burst_qps: float | None = None  # bursty: Poisson rate within a burst
    idle_s: float | None = None  # bursty: silence between bursts

    @property
    def label(self) -> str:
        if self.target_qps is not None:
            return f"{self.scenario} {self.target_qps:.4g} qps"
        if self.gap_s is not None:
            return f"intermittent every {self.gap_s:g} s"
        if self.burst_size is not None:
            return f"bursts of {self.burst_size}"
        if self.concurrency is not None and self.scenario == "concurrency":
            return f"concurrency {self.concurrency}"
        return f"{self.scenario} batch {self.batch_size}"

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not (k in _LATER_FIELDS and v is None)}


def expand(sc: ScenarioConfig) -> list[LoadPoint]:
    """The load points of one scenario config, in the order they are measured."""
    common = dict(
        scenario=sc.name,
        batch_size=sc.batch_size,
        warmup_s=sc.warmup_s,
        duration_s=sc.duration_s,
        seed=sc.seed,
    )
    if sc.name == "single_stream":
        return [LoadPoint(**common, concurrency=1)]
    if sc.name == "concurrency":
        return [LoadPoint(**common, concurrency=int(level)) for level in sc.levels]
    if sc.name == "server":
        return [LoadPoint(**common, target_qps=float(sc.target_qps), connections=sc.connections)]
    if sc.name == "offline":
        return [LoadPoint(**common, requests=sc.requests)]
    if sc.name == "intermittent":
        return [LoadPoint(**common, gap_s=float(sc.gap_s), jitter=float(sc.jitter))]
    if sc.name == "bursty":
        return [
            LoadPoint(
                **common,
                burst_size=int(sc.burst_size),
                burst_qps=float(sc.burst_qps),
                idle_s=float(sc.idle_s),
            )
        ]
    raise ValueError(f"scenario.name: no load points defined for {sc.name!r}")


def next_point(sc: ScenarioConfig, measured: list[dict]) -> LoadPoint | None:
    """The next point to measure, given the rows already measured under this configuration
    (each carries its point as JSON in `point`); None when the scenario is done."""
    seen = [json.loads(row["point"]) for row in measured]
    if sc.name in STATIC:
        return next((p for p in expand(sc) if p.as_dict() not in seen), None)
    if sc.name == "slo_search":
        return _next_search_point(sc, measured)
    raise ValueError(f"scenario.name: no load points defined for {sc.name!r}")


def _next_search_point(sc: ScenarioConfig, measured: list[dict]) -> LoadPoint | None:
    common = dict(
        batch_size=sc.batch_size, warmup_s=sc.warmup_s, duration_s=sc.duration_s, seed=sc.seed
    )
    probe = LoadPoint(scenario="concurrency", concurrency=PROBE_CONCURRENCY, **common)
    rows = {json.dumps(json.loads(r["point"]), sort_keys=True): r for r in measured}
    probe_row = rows.get(json.dumps(probe.as_dict(), sort_keys=True))
    if probe_row is None:
        return probe
    if probe_row.get("status") != "measured":
        return None  # no saturation estimate to search from; the failed probe says why
    trials = [
        Trial(
            rate=r["target_qps"],
            percentile_ms=r.get(f"latency_{sc.slo_percentile}_ms", float("nan")),
            passed=passed(r, sc.slo_ms, sc.slo_percentile, sc.max_late_fraction),
        )
        for r in measured
        if json.loads(r["point"])["scenario"] == "server"
    ]
    rate = next_rate(trials, sc.slo_ms, probe_row["achieved_qps"], sc.tolerance, sc.max_points)
    if rate is None:
        return None
    return LoadPoint(
        scenario="server", target_qps=round(rate, 3), connections=sc.connections, **common
    )


def point_id(config_key: dict, point: LoadPoint) -> str:
    """A stable id for (configuration, load point): a re-run in the same folder skips it."""
    blob = json.dumps({"config": config_key, "point": point.as_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
