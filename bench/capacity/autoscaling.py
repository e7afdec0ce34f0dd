"""Autoscaling, simulated on measured behaviour: a Kubernetes HorizontalPodAutoscaler
(`autoscaling/v2`, scaling on CPU utilisation) driving the replicas of a measured configuration
over a trace of arrivals, each new replica serving only after the measured cold start, each
request's service time drawn from the measured ones (`bench.capacity.queueing.Pool`, the
planner's own simulation). Pure functions of their inputs and a seed.

The controller follows Kubernetes' own (pkg/controller/podautoscaler, as documented at
kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale): every sync period,
desired = ceil(ready replicas x utilisation / target), nothing while |utilisation / target - 1|
<= tolerance; on a scale-up with replicas still starting, those count as 0% busy (which damps
it); the recommendation is stabilised (the lowest of the scale-up window's, the highest of the
scale-down window's) and the change limited by each direction's policies, between the minimum
and maximum replicas.

Assumptions, stated where the plan shows results: a replica's CPU utilisation is the share of
the period it spent serving (a worker serving one request at a time uses the cores it
requests); one queue in front of all ready replicas (a load balancer that sends to a free
replica); a replica removed finishes what it holds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from bench import traces
from bench.capacity.queueing import Pool, on_demand, percentile_ms, replayed
from bench.capacity.serverless import cost_per_million


@dataclass(frozen=True)
class Policy:
    """One HPAScalingPolicy: at most `value` pods (`Pods`) or percent (`Percent`) per period."""

    kind: str  # "Pods" or "Percent"
    value: int
    period_s: int


@dataclass(frozen=True)
class Rules:
    """HPAScalingRules: the stabilisation window and the policies of one direction."""

    stabilization_s: int
    policies: tuple[Policy, ...]
    select: str = "Max"

    def as_manifest(self) -> dict:
        return {
            "stabilizationWindowSeconds": self.stabilization_s,
            "selectPolicy": self.select,
            "policies": [
                {"type": p.kind, "value": p.value, "periodSeconds": p.period_s}
                for p in self.policies
            ],
        }


# Kubernetes' defaults for autoscaling/v2, which the generated HPA writes out explicitly.
SCALE_UP = Rules(0, (Policy("Percent", 100, 15), Policy("Pods", 4, 15)))
SCALE_DOWN = Rules(300, (Policy("Percent", 100, 15),))
TOLERANCE = 0.1  # the controller's --horizontal-pod-autoscaler-tolerance
SYNC_PERIOD_S = 15.0  # the controller's --horizontal-pod-autoscaler-sync-period


@dataclass(frozen=True)
class Hpa:
    """What the HorizontalPodAutoscaler manifest says, and the controller's constants."""

    min_replicas: int
    max_replicas: int
    target_utilization: float  # a share of the CPU requested, 0-1
    scale_up: Rules = SCALE_UP
    scale_down: Rules = SCALE_DOWN
    tolerance: float = TOLERANCE
    sync_period_s: float = SYNC_PERIOD_S

    def behavior(self) -> dict:
        return {"scaleUp": self.scale_up.as_manifest(), "scaleDown": self.scale_down.as_manifest()}


def desired_replicas(
    current: int, ready: int, starting: int, utilization: float, target: float, tolerance: float
) -> int:
    """The replica calculator for a CPU utilisation target: `utilization` is the ready
    replicas' average; replicas still starting are left out, and on a scale-up counted as 0%."""
    if ready == 0:
        return current
    ratio = utilization / target
    if starting == 0 or ratio <= 1.0:
        return current if abs(1.0 - ratio) <= tolerance else math.ceil(ratio * ready)
    damped = utilization * ready / (ready + starting) / target
    if abs(1.0 - damped) <= tolerance or damped < 1.0:
        return current
    return max(current, math.ceil(damped * (ready + starting)))


@dataclass
class _Controller:
    """The controller's memory: past recommendations and scale events."""

    hpa: Hpa
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    ups: list[tuple[float, int]] = field(default_factory=list)
    downs: list[tuple[float, int]] = field(default_factory=list)

    def decide(self, now: float, current: int, desired: int) -> int:
        """The replicas to set at `now`: `desired` stabilised, then limited by the policies."""
        hpa = self.hpa
        up, down = desired, desired
        for at, value in self.recommendations:
            if at > now - hpa.scale_up.stabilization_s:
                up = min(up, value)
            if at > now - hpa.scale_down.stabilization_s:
                down = max(down, value)
        self.recommendations.append((now, desired))
        horizon = max(hpa.scale_down.stabilization_s, hpa.scale_up.stabilization_s, 600)
        self.recommendations = [(a, v) for a, v in self.recommendations if a > now - horizon]
        stable = min(max(current, up), down)
        if stable > current:
            limit = max(self._limit(now, current, hpa.scale_up, +1), current)
            new = min(stable, limit, hpa.max_replicas)
        elif stable < current:
            limit = min(self._limit(now, current, hpa.scale_down, -1), current)
            new = max(stable, limit, hpa.min_replicas)
        else:
            new = current
        if new != current:
            (self.ups if new > current else self.downs).append((now, abs(new - current)))
        return new

    def _limit(self, now: float, current: int, rules: Rules, sign: int) -> int:
        best = None
        for policy in rules.policies:
            added = sum(n for at, n in self.ups if at > now - policy.period_s)
            removed = sum(n for at, n in self.downs if at > now - policy.period_s)
            start = current - added + removed
            if policy.kind == "Pods":
                proposed = start + sign * policy.value
            elif sign > 0:
                proposed = math.ceil(start * (1 + policy.value / 100))
            else:
                proposed = int(start * (1 - policy.value / 100))
            pick = max if (rules.select == "Max") == (sign > 0) else min
            best = proposed if best is None else pick(best, proposed)
        return current if best is None else best


def simulate_hpa(
    arrivals: np.ndarray,
    service_s: np.ndarray,
    hpa: Hpa,
    cold_start_s: float,
    slo_ms: float,
    percentile: str,
    length_s: float | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The trace under the HPA, one row per sync period: its start (`t_s`), the rate offered,
    the replicas set (`replicas`, starting ones included) and ready, the ready replicas' CPU
    utilisation, the `percentile` latency of the requests arriving in it (ms) and whether it
    met `slo_ms` (a period with no request meets it). Starts at `min_replicas`, all ready."""
    rng = np.random.default_rng(seed)
    services = replayed(service_s, len(arrivals), rng)
    sync = hpa.sync_period_s
    end = float(length_s if length_s is not None else (arrivals[-1] if len(arrivals) else 0.0))
    pool = Pool(hpa.min_replicas)
    ready_at = [0.0] * hpa.min_replicas  # when each replica set serves
    controller = _Controller(hpa, recommendations=[(0.0, hpa.min_replicas)])
    rows = []
    bounds = np.searchsorted(arrivals, np.arange(0.0, end + sync, sync))
    for k in range(len(bounds) - 1):
        t0, t1 = k * sync, (k + 1) * sync
        if t0 >= end and k > 0:
            break
        lo, hi = bounds[k], bounds[k + 1]
        latencies = pool.serve(arrivals[lo:hi], services[lo:hi])
        ready_s = sum(max(0.0, t1 - max(t0, r)) for r in ready_at)
        # CPU is limited to what a replica requests (the manifests set limits = requests):
        # a backlog shows as 100%, not more.
        utilization = min(1.0, pool.take_busy() / ready_s) if ready_s > 0 else 0.0
        value = percentile_ms(latencies, percentile) if len(latencies) else math.nan
        current = len(ready_at)
        ready = sum(r <= t1 for r in ready_at)
        rows.append(
            {
                "t_s": t0,
                "offered_qps": (hi - lo) / sync,
                "replicas": current,
                "ready_replicas": sum(r <= t0 for r in ready_at),
                "utilization": utilization,
                f"latency_{percentile}_ms": value,
                "slo_met": not (value > slo_ms),
            }
        )
        desired = desired_replicas(
            current, ready, current - ready, utilization, hpa.target_utilization, hpa.tolerance
        )
        new = controller.decide(t1, current, desired)
        if new > current:
            ready_at += [t1 + cold_start_s] * (new - current)
            pool.add(new - current, t1 + cold_start_s)
        elif new < current:
            ready_at = sorted(ready_at)[:new]
            pool.remove(current - new)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Outcome:
    """What one simulation over a trace came to."""

    hpa: Hpa
    slo_share: float  # of the trace's time (sync periods) with the percentile met
    replica_hours: float  # replicas set (starting ones included) x hours
    peak_replicas: int
    timeline: pd.DataFrame


def outcome(timeline: pd.DataFrame, hpa: Hpa) -> Outcome:
    hours = float(timeline["replicas"].sum() * hpa.sync_period_s / 3600.0)
    return Outcome(
        hpa=hpa,
        slo_share=float(timeline["slo_met"].mean()) if len(timeline) else math.nan,
        replica_hours=hours,
        peak_replicas=int(timeline["replicas"].max()) if len(timeline) else 0,
        timeline=timeline,
    )


def choose_hpa(
    arrivals: np.ndarray,
    service_s: np.ndarray,
    max_replicas: int,
    targets: list[float],
    cold_start_s: float,
    slo_ms: float,
    percentile: str,
    slo_share: float,
    length_s: float,
    seed: int = 0,
) -> tuple[Outcome | None, list[Outcome]]:
    """For each target utilisation, the lowest min-replicas whose simulation meets the SLO for
    at least `slo_share` of the trace; of those, the one with the fewest replica-hours (the
    cheapest), or None if no setting keeps the SLO. Returns it and every setting tried."""
    tried: list[Outcome] = []
    kept: list[Outcome] = []
    for target in sorted(targets, reverse=True):
        for minimum in range(1, max_replicas + 1):
            hpa = Hpa(minimum, max_replicas, target)
            found = outcome(
                simulate_hpa(
                    arrivals, service_s, hpa, cold_start_s, slo_ms, percentile, length_s, seed
                ),
                hpa,
            )
            tried.append(found)
            if found.slo_share >= slo_share:
                kept.append(found)
                break
    best = min(kept, key=lambda o: (o.replica_hours, -o.hpa.target_utilization), default=None)
    return best, tried


def broken_spells(timeline: pd.DataFrame, sync_period_s: float) -> tuple[float, float]:
    """(seconds in all with the SLO broken, the longest unbroken run of them)."""
    broken = ~timeline["slo_met"].to_numpy(dtype=bool)
    longest = run = 0
    for b in broken:
        run = run + 1 if b else 0
        longest = max(longest, run)
    return float(broken.sum() * sync_period_s), float(longest * sync_period_s)


def fixed(hpa: Hpa, replicas: int) -> Hpa:
    """The same HPA pinned to `replicas` (min = max): a deployment that does not scale."""
    return replace(hpa, min_replicas=replicas, max_replicas=replicas)


# --- the plan's use of it ----------------------------------------------------------------------

# Strategies whose cold start is a replica's: a process started, its imports, the model loaded.
_REPLICA_COLD_STARTS = ("http", "grpc", "container", "serverless")
HOURS_PER_MONTH = 30.44 * 24


@dataclass(frozen=True)
class Serverless:
    """A measured `serverless` configuration, to replay on the same trace: its service times,
    median cold start, keep-alive, instance limit and billed memory, and the prices
    (`catalog.serverless_pricing`)."""

    service_s: np.ndarray
    cold_start_s: float
    keep_alive_s: float
    max_instances: int
    memory_gb: float
    pricing: dict


@dataclass(frozen=True)
class AutoscalingPlan:
    """The HPA settings chosen and what the simulations found: `timeline` per case and sync
    period, `settings` one row per setting tried and per case, `sentence` in words."""

    hpa: Hpa | None
    timeline: pd.DataFrame
    settings: pd.DataFrame
    sentence: str


def run_trace(rows: pd.DataFrame) -> tuple[traces.Trace, str] | None:
    """The trace a `trace` point offered, in trace seconds (its run's per-window offered rate
    times its speedup), and its label; None when no trace point was measured."""
    if "timeline_offered_qps" not in rows or "scenario" not in rows:
        return None
    found = rows[(rows["scenario"] == "trace") & (rows["status"] == "measured")]
    if found.empty:
        return None
    row = found.iloc[0]
    speedup = float(json.loads(json.loads(row["point"])["trace"]).get("speedup", 1.0))
    starts = np.asarray(row["timeline_start_s"], dtype=float) * speedup
    rates = np.asarray(row["timeline_offered_qps"], dtype=float) / speedup
    window = float(row["timeline_window_s"]) * speedup
    if not len(rates) or rates.max() <= 0:
        return None
    length = float(starts[-1] + window)
    return traces.Trace(length, starts=starts, rates=rates), str(row["label"])


def measured_cold_start(rows: pd.DataFrame, strategy: str) -> float | None:
    """The median cold start the configuration's points measured, where a replica's start is
    what its strategy measures; None otherwise."""
    if strategy not in _REPLICA_COLD_STARTS or "cold_start_s" not in rows:
        return None
    values = pd.to_numeric(rows["cold_start_s"], errors="coerce").dropna()
    return float(values.median()) if len(values) else None


def plan_autoscaling(
    trace: traces.Trace,
    trace_name: str,
    service_s: np.ndarray,
    max_replicas: int,
    cold_start_s: float,
    cold_start_measured: bool,
    slo_ms: float,
    percentile: str,
    settings,
    eur_per_replica_hour: float | None,
    serverless: Serverless | None = None,
) -> AutoscalingPlan:
    """Choose the HPA's settings over `trace` (per interval, its peak the plan's) and say what
    they do there and under a flash crowd; `settings` is `plan.autoscaling`."""
    seed = settings.seed
    arrivals = traces.arrivals(trace, seed)
    best, tried = choose_hpa(
        arrivals,
        service_s,
        max_replicas,
        list(settings.targets),
        cold_start_s,
        slo_ms,
        percentile,
        settings.slo_share,
        trace.length_s,
        seed,
    )
    peak = trace.peak_qps
    crowd_at = max(settings.flash_crowd_s, 300.0)
    crowd = traces.flash_crowd(
        peak / settings.flash_crowd_factor,
        settings.flash_crowd_factor,
        crowd_at,
        settings.flash_crowd_s,
        crowd_at + 2 * settings.flash_crowd_s,
    )
    cases = {"fixed at peak": fixed(Hpa(max_replicas, max_replicas, 1.0), max_replicas)}
    if best is not None:
        cases = {"hpa": best.hpa, **cases}
    frames, summary = [], []
    for outcome_ in tried:
        summary.append(
            _summary("tried", trace_name, outcome_, trace.length_s, eur_per_replica_hour)
        )
    for case, hpa in cases.items():
        found = outcome(
            simulate_hpa(
                arrivals, service_s, hpa, cold_start_s, slo_ms, percentile, trace.length_s, seed
            ),
            hpa,
        )
        frames.append(found.timeline.assign(case=case, trace=trace_name))
        summary.append(_summary(case, trace_name, found, trace.length_s, eur_per_replica_hour))
    crowd_hpa = best.hpa if best is not None else cases["fixed at peak"]
    crowd_outcome = outcome(
        simulate_hpa(
            traces.arrivals(crowd, seed),
            service_s,
            crowd_hpa,
            cold_start_s,
            slo_ms,
            percentile,
            crowd.length_s,
            seed,
        ),
        crowd_hpa,
    )
    name = f"flash crowd {settings.flash_crowd_factor:g}x"
    frames.append(
        crowd_outcome.timeline.assign(case="hpa" if best else "fixed at peak", trace=name)
    )
    summary.append(
        _summary("flash crowd", name, crowd_outcome, crowd.length_s, eur_per_replica_hour)
    )
    broken, longest = broken_spells(crowd_outcome.timeline, crowd_hpa.sync_period_s)
    cold = f"{cold_start_s:g} s {'measured' if cold_start_measured else 'assumed (none measured)'}"
    if best is None:
        sentence = (
            f"No HPA setting tried (targets {', '.join(f'{t:.0%}' for t in settings.targets)}, "
            f"min replicas 1-{max_replicas}) keeps {percentile} under {slo_ms:g} ms for "
            f"{settings.slo_share:.0%} of the {trace_name}; the manifests keep the sizing's "
            f"replicas fixed. Cold start {cold}."
        )
    else:
        fixed_hours = summary[-2]["replica_hours"]
        sentence = (
            f"Over the {trace_name} (peak {peak:,.1f} requests/s), an HPA with minReplicas "
            f"{best.hpa.min_replicas}, maxReplicas {max_replicas} and a target CPU utilisation "
            f"of {best.hpa.target_utilization:.0%} keeps {percentile} under {slo_ms:g} ms "
            f"{best.slo_share:.1%} of the time with {best.replica_hours:.3g} replica-hours "
            f"({best.replica_hours / fixed_hours:.0%} of {max_replicas} fixed replicas); "
            f"cold start {cold}. A flash crowd of {settings.flash_crowd_factor:g}x (to the "
            f"peak, for {settings.flash_crowd_s:g} s) breaks the SLO for {broken:g} s "
            f"(longest spell {longest:g} s) while replicas start, reaching "
            f"{crowd_outcome.peak_replicas} replicas."
        )
    if serverless is not None:
        row, said = _serverless(serverless, arrivals, trace, trace_name, slo_ms, percentile, seed)
        summary.append(row)
        sentence += " " + said
    return AutoscalingPlan(
        hpa=best.hpa if best is not None else None,
        timeline=pd.concat(frames, ignore_index=True),
        settings=pd.DataFrame(summary),
        sentence=sentence,
    )


def _summary(
    case: str, trace: str, found: Outcome, length_s: float, eur_per_replica_hour: float | None
) -> dict:
    hours = length_s / 3600.0
    per_month = found.replica_hours / hours * HOURS_PER_MONTH if hours > 0 else math.nan
    price = eur_per_replica_hour if eur_per_replica_hour is not None else math.nan
    return {
        "case": case,
        "trace": trace,
        "min_replicas": found.hpa.min_replicas,
        "max_replicas": found.hpa.max_replicas,
        "target_utilization": found.hpa.target_utilization,
        "slo_share": found.slo_share,
        "peak_replicas": found.peak_replicas,
        "replica_hours": found.replica_hours,
        "replica_hours_per_month": per_month,
        "cost_eur": found.replica_hours * price,
        "cost_eur_per_month": per_month * price,
    }


def _serverless(
    measured: Serverless,
    arrivals: np.ndarray,
    trace: traces.Trace,
    trace_name: str,
    slo_ms: float,
    percentile: str,
    seed: int,
) -> tuple[dict, str]:
    """The measured serverless configuration on the same trace: its SLO share (per sync
    period, as the HPA's), cold starts and cost at the configured prices."""
    rng = np.random.default_rng(seed)
    services = replayed(measured.service_s, len(arrivals), rng)
    found = on_demand(
        arrivals, services, measured.cold_start_s, measured.keep_alive_s, measured.max_instances
    )
    periods = (arrivals // SYNC_PERIOD_S).astype(int)
    count = max(int(math.ceil(trace.length_s / SYNC_PERIOD_S)), 1)
    frame = pd.DataFrame({"period": periods, "latency": found.latencies_s})
    met = frame.groupby("period")["latency"].apply(
        lambda x: percentile_ms(x.to_numpy(), percentile) <= slo_ms
    )
    share = (count - int((~met).sum())) / count
    pricing = measured.pricing
    billed = found.instance_s if pricing.get("billed_time") == "lifetime" else found.busy_s
    per_million = cost_per_million(
        billed * measured.memory_gb,
        len(arrivals),
        pricing.get("per_gb_second"),
        pricing.get("per_million_requests"),
    )
    months = trace.length_s / 3600.0 / HOURS_PER_MONTH
    monthly = per_million * len(arrivals) / 1e6 / months if months > 0 else math.nan
    currency = str(pricing.get("currency", "")).upper()
    row = {
        "case": "serverless",
        "trace": trace_name,
        "max_replicas": measured.max_instances,
        "slo_share": share,
        "cold_starts": found.cold_starts,
        "instance_hours": found.instance_s / 3600.0,
        "cost_per_month": monthly,
        "currency": currency,
    }
    cost = f"{currency} {monthly:,.0f} a month" if math.isfinite(monthly) else "at no known price"
    said = (
        f"Serverless as measured (cold start {measured.cold_start_s:.2g} s, keep-alive "
        f"{measured.keep_alive_s:g} s, at most {measured.max_instances} instances) on the same "
        f"trace keeps the SLO {share:.1%} of the time with {found.cold_starts:,} cold starts, "
        f"{cost}."
    )
    return row, said
