"""Plan from stored results: per measuring host, scaled from the calibration stored with its
rows, the sizing on every catalog server, the recommendation, Kubernetes manifests, the image's
build context, the source document's tables and the serverless costs at the configured prices.
A pure function of results, target, catalog and prices: re-planning for another target or
catalog reads the same results and measures nothing. `bench.capacity.store.Plan` lays the plan
out in its folder."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from bench import results, traces
from bench.capacity.autoscaling import (
    HOURS_PER_MONTH,
    AutoscalingPlan,
    Serverless,
    measured_cold_start,
    plan_autoscaling,
    run_trace,
)
from bench.capacity.catalog import Catalog, load_catalog
from bench.capacity.generative import (
    GENERATIVE_FORMULA,
    generative_deployment,
    generative_sentence,
    generative_sizing,
    is_generative,
    manifests_sentence,
    measured_threads,
    unmeasured,
)
from bench.capacity.image import write_image
from bench.capacity.manifests import Deployment, deployment_name, manifests, readme
from bench.capacity.measured import (
    MeasuredConfig,
    MeasuredHost,
    deployable,
    host_ids,
    left_out,
    measured_configs,
    measured_hosts,
    unsized_configs,
)
from bench.capacity.monitoring import SERVICE_MONITOR, Objective, monitoring, service_monitor
from bench.capacity.planner import (
    SECONDS_PER_MONTH,
    Target,
    hosts_sizing,
    no_valid_point_sentence,
    recommend,
    recommendation_sentence,
)
from bench.capacity.pod_check import PodCheck, checked, pod_check
from bench.capacity.scaling import FORMULA
from bench.capacity.serverless import break_even_qps, serverless_costs
from bench.capacity.store import PLAN_DIR, Plan
from bench.capacity.tables import document_tables
from bench.capacity.tiers import cross_tier_table
from bench.config.plan import AutoscalingConfig

__all__ = [
    "PLAN_DIR",
    "Plan",
    "make_plan",
    "plan_results",
    "serverless_break_even",
    "target_of",
    "write_plan",
]


def target_of(cfg: DictConfig) -> Target:
    plan = cfg.plan
    return Target(
        plan.peak_qps,
        plan.percentile,
        plan.slo_ms,
        plan.headroom,
        plan.min_servers,
        plan.get("slo_ttft_ms"),
        plan.get("slo_tpot_ms"),
    )


def write_plan(path: str | os.PathLike, cfg: DictConfig) -> Path:
    """Plan from every result under `path` (a run or sweep folder); return the plan folder."""
    return plan_results(results.load(path), cfg, path).write(path)


def plan_results(frame: pd.DataFrame, cfg: DictConfig, folder: str | os.PathLike) -> Plan:
    """The plan for results `frame` (from any number of folders and hosts), with the target,
    catalog and prices of `cfg`, to be written into `folder` (which the pod check's command
    names). With `plan.check_of`, the plan also checks that folder's pod against `frame`."""
    has_catalog = "catalog" in cfg
    prices = OmegaConf.to_container(cfg.catalog.prices, resolve=True) if has_catalog else {}
    catalog = load_catalog(cfg.catalog.path if has_catalog else None, prices)
    pricing = (
        OmegaConf.to_container(cfg.catalog.serverless_pricing, resolve=True, enum_to_str=True)
        if has_catalog
        else {}
    )
    stored = cfg.plan.get("autoscaling")
    autoscaling = (
        OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(AutoscalingConfig), stored))
        if stored is not None
        else AutoscalingConfig()
    )
    plan = make_plan(
        frame,
        catalog,
        target_of(cfg),
        pricing,
        cfg.plan.image,
        cfg.plan.eur_per_usd,
        autoscaling,
        str(Path(folder).resolve()),
    )
    if check_of := cfg.plan.get("check_of"):
        plan.checked = _checked(frame, check_of)
    return plan


def _checked(frame: pd.DataFrame, check_of: str) -> pd.DataFrame:
    """The pod check that the plan in `check_of` wrote, against these results."""
    stored = Plan.read(check_of).pod_check
    if not stored:
        raise ValueError(
            f"plan.check_of: {check_of}'s plan has no pod to check (no recommendation)"
        )
    return checked(PodCheck.from_dict(stored), frame, str(Path(check_of).resolve()))


def make_plan(
    frame: pd.DataFrame,
    catalog: Catalog,
    target: Target,
    pricing: Mapping[str, Any],
    image: str,
    eur_per_usd: float | None = None,
    autoscaling: AutoscalingConfig | None = None,
    folder: str = "RUN",
) -> Plan:
    """The plan for stored results `frame`: each host's configurations scaled from that host's
    calibration (`calib_*` in its rows), against every server of `catalog`; `pricing` is
    `catalog.serverless_pricing`, `image` the image name the manifests give; `autoscaling`
    (`plan.autoscaling`) how the HPA's settings are chosen by simulation (None: defaults);
    `folder` where the plan will be written (the pod check's command names it)."""
    if is_generative(frame):
        return _generative_plan(frame, catalog, target, image)
    hosts = [(host, measured_configs(host.rows, host.cores)) for host in measured_hosts(frame)]
    sizing = hosts_sizing(hosts, catalog, target)
    best = recommend(sizing) if not sizing.empty else None
    configs = [config for _, found in hosts for config in found]
    model = configs[0].config["model"]["name"] if configs else "the model"
    several = len({host.id for host, found in hosts if found}) > 1
    host_name = str(best["host"]) if best is not None and several else None
    if configs or frame.empty:
        sentence = recommendation_sentence(best, target, model, host_name)
        if unsized := unsized_configs(frame):
            sentence += f" Not sized, for want of a valid point: {'; '.join(unsized)}."
    else:
        sentence = no_valid_point_sentence(target, left_out(frame))
    deployment, files, watch, build_image, scaling, check = None, {}, {}, None, None, None
    if best is not None:
        host, measured = _chosen(hosts, best)
        sentence += _artifact_sentence(measured)
        settings = autoscaling if autoscaling is not None else AutoscalingConfig()
        if settings.enabled:
            on_demand = _serverless(frame, configs, pricing)
            scaling = _autoscaling(frame, best, measured, target, settings, on_demand)
        deployment = _deployment(best, measured, target, image, scaling)
        files = manifests(deployment)
        watch = monitoring(deployment, _objective(best, measured, target))
        check = pod_check(measured, host, deployment, target)
        build_image = partial(
            write_image,
            config=measured.config,
            threads=deployment.cpu_per_replica,
            slo_ms=target.slo_ms,
        )
    costs = serverless_costs(frame, pricing)
    return Plan(
        recommendation=sentence,
        sizing=sizing,
        formula=FORMULA,
        tables=document_tables(frame, sizing, best, deployment, catalog, target),
        serverless=costs,
        break_even=serverless_break_even(costs, best, eur_per_usd) or "",
        cross_tier=cross_tier_table(frame, target),
        manifests=files,
        manifests_readme=readme(image) if files else "",
        monitoring=watch,
        image=build_image,
        autoscaling=scaling.timeline if scaling is not None else pd.DataFrame(),
        autoscaling_settings=scaling.settings if scaling is not None else pd.DataFrame(),
        autoscaling_sentence=scaling.sentence if scaling is not None else "",
        pod_check=check.as_dict() if check is not None else {},
        pod_check_sentence=check.sentence(folder) if check is not None else "",
    )


def _autoscaling(
    frame: pd.DataFrame,
    best: pd.Series,
    measured: MeasuredConfig,
    target: Target,
    settings: AutoscalingConfig,
    serverless: Serverless | None,
) -> AutoscalingPlan:
    """The HPA simulated for the recommended configuration on its server: over the run's trace
    (scaled to the target's peak) or a diurnal cycle, with the measured cold start."""
    found = run_trace(frame)
    if found is not None:
        trace, name = traces.scaled_to_peak(found[0], target.peak_qps), f"run's {found[1]}"
    else:
        trace = traces.diurnal(
            settings.trough_share * target.peak_qps,
            target.peak_qps,
            settings.period_s,
            settings.period_s,
        )
        name = f"diurnal cycle of {settings.period_s:g} s"
    names = {group: measured.config[group]["name"] for group in ("model", "backend", "strategy")}
    rows = frame
    for group, value in names.items():
        rows = rows[rows[group] == value]
    cold = measured_cold_start(rows, names["strategy"])
    price = best.get("price_eur_month")
    per_replica_hour = (
        float(price) / float(best["workers_per_server"]) / HOURS_PER_MONTH
        if price is not None and pd.notna(price)
        else None
    )
    return plan_autoscaling(
        trace,
        name,
        measured.service_s / float(best["scale_factor"]),
        int(best["replicas"]),
        cold if cold is not None else settings.assumed_cold_start_s,
        cold is not None,
        target.slo_ms,
        target.percentile,
        settings,
        per_replica_hour,
        serverless,
    )


def _serverless(
    frame: pd.DataFrame, configs: list[MeasuredConfig], pricing: Mapping[str, Any]
) -> Serverless | None:
    """The first serverless configuration sized from valid points, as the HPA simulation
    replays it: its own service times, cold start, keep-alive, instances and memory."""
    measured = next((c for c in configs if c.config["strategy"]["name"] == "serverless"), None)
    if measured is None or not len(measured.service_s):
        return None
    rows = frame[frame["strategy"] == "serverless"]
    cold = measured_cold_start(rows, "serverless")
    strategy = measured.config["strategy"]
    memory_mb = (
        strategy.get("memory_mb")
        or pd.to_numeric(rows.get("instance_rss_peak_mb"), errors="coerce").median()
    )
    if cold is None or not memory_mb or pd.isna(memory_mb):
        return None
    return Serverless(
        service_s=measured.service_s,
        cold_start_s=cold,
        keep_alive_s=float(strategy["keep_alive_s"]),
        max_instances=int(strategy["max_instances"]),
        memory_gb=float(memory_mb) / 1024.0,
        pricing=dict(pricing),
    )


def _generative_plan(frame: pd.DataFrame, catalog: Catalog, target: Target, image: str) -> Plan:
    """A generative model's plan: capacity at the TTFT and TPOT SLOs as measured, servers and
    cost per million output tokens (`bench.capacity.generative`); for a recommendation served
    here, the manifests (an HPA on the requests in flight per pod), the ServiceMonitor through
    which that metric reaches Prometheus, and the image's build context. No autoscaling
    simulation or pod check: both rest on per-request service times, which a generating server
    does not have."""
    percentile = str(target.percentile)
    sizing = generative_sizing(
        measured_hosts(frame), catalog, target.peak_qps, target.headroom, target.min_servers,
        percentile, target.slo_ttft_ms, target.slo_tpot_ms,
    )  # fmt: skip
    best = recommend(sizing) if not sizing.empty else None
    sentence = generative_sentence(
        best, target.peak_qps, percentile, target.slo_ttft_ms, target.slo_tpot_ms
    )
    plan = Plan(recommendation=sentence, sizing=sizing, formula=GENERATIVE_FORMULA)
    if best is None:
        return plan
    if pd.isna(best.get("server_id")):
        plan.recommendation += (
            f" No manifests: {best['server']} is yours, on hardware the harness does not know."
        )
        return plan
    if missing := unmeasured(best):
        plan.recommendation += (
            f" No manifests: the results of {best['sized_from']} do not hold {missing}, which "
            "the pods' resources and the autoscaler's target come from."
        )
        return plan
    # The point the capacity came from, on the host that measured it (shards of several
    # hosts may hold one point each).
    on_host = frame[host_ids(frame) == best["host_id"]]
    point = on_host[on_host["point_id"] == best["point_id"]].iloc[0]
    deployment, source = generative_deployment(best, point, image, target.peak_qps, target.headroom)
    plan.recommendation += _artifact_sentence_of(
        deployment.model_sha256, deployment.model_artifact
    ) + manifests_sentence(deployment)
    plan.manifests = manifests(deployment)
    plan.manifests_readme = readme(image, source)
    plan.monitoring = {SERVICE_MONITOR: service_monitor(deployment)}
    plan.image = partial(
        write_image, config=deployable(point["config"]), threads=measured_threads(point)
    )
    return plan


def _artifact_sentence(measured: MeasuredConfig) -> str:
    """Which model artifact the recommendation sized, as its rows recorded it."""
    return _artifact_sentence_of(measured.model_sha256, measured.model_artifact)


def _artifact_sentence_of(model_sha256: str, model_artifact: str) -> str:
    if model_sha256:
        return f" Sized for {model_artifact} (model_sha256 {model_sha256})."
    if model_artifact:
        return f" Sized from points that served {model_artifact}."
    return ""


def _chosen(
    hosts: list[tuple[MeasuredHost, list[MeasuredConfig]]], best: pd.Series
) -> tuple[MeasuredHost, MeasuredConfig]:
    """The measured configuration a sizing row was sized from, and the host that measured it."""
    return next(
        (host, config)
        for host, found in hosts
        if host.id == best["host_id"]
        for config in found
        if config.label == best["configuration"] and config.tier == _text(best.get("tier"))
    )


def _text(value: object) -> str:
    """A sizing cell as text: "" for a missing one."""
    return "" if value is None or value != value else str(value)  # value != value: NaN


def serverless_break_even(
    costs: pd.DataFrame, best: pd.Series | None, eur_per_usd: float | None
) -> str | None:
    """One sentence comparing the serverless cost (`serverless_costs`: measured usage at the
    configured prices) with the recommended dedicated servers, or None when no serverless point
    was measured or no serverless price is known."""
    if costs.empty or "cost_per_million" not in costs:
        return None
    priced = costs[costs["cost_per_million"].notna()]
    if priced.empty:
        return None
    currency = str(priced["currency"].iloc[0]).upper()
    per_million = float(priced["cost_per_million"].median())
    as_of = str(priced["pricing_as_of"].iloc[0]) if "pricing_as_of" in priced else ""
    dated = f" (prices as of {as_of})" if as_of and as_of != "nan" else ""
    measured = f"Serverless measured {per_million:.2f} {currency} per million requests{dated}"
    if best is None or pd.isna(best.get("monthly_cost_eur")):
        return f"{measured}; no priced dedicated server to compare with (set catalog.prices)."
    if currency == "EUR":
        per_million_eur = per_million
    elif currency == "USD" and eur_per_usd:
        per_million_eur = per_million * eur_per_usd
    else:
        return f"{measured}; set plan.eur_per_usd (dated, yours) to compare it with EUR prices."
    rate = break_even_qps(per_million_eur, float(best["monthly_cost_eur"]), SECONDS_PER_MONTH)
    return (
        f"{measured}: it costs less than {int(best['servers'])} x {best['server']} "
        f"(EUR {best['monthly_cost_eur']:,.0f} a month) below {rate:,.2f} requests/s of steady "
        "load, and more above it (at the cold-start share measured)."
    )


def _per_replica_qps(best: pd.Series) -> float:
    """What one replica sustains within the SLO, as the sizing assumed."""
    return float(best["capacity_qps"] / best["workers_per_server"])


def _objective(best: pd.Series, measured: MeasuredConfig, target: Target) -> Objective:
    """What the monitoring holds the deployment to: the target's SLO and peak, and the
    capacity per replica the sizing assumed."""
    return Objective(
        model=measured.config["model"]["name"],
        percentile=str(target.percentile),
        slo_ms=target.slo_ms,
        peak_qps=target.peak_qps,
        capacity_qps_per_replica=_per_replica_qps(best),
    )


def _deployment(
    best: pd.Series,
    measured: MeasuredConfig,
    target: Target,
    image: str,
    scaling: AutoscalingPlan | None,
) -> Deployment:
    per_replica = _per_replica_qps(best)
    hpa = scaling.hpa if scaling is not None else None
    return Deployment(
        name=deployment_name(measured.config),
        image=image,
        replicas=int(best["replicas"]),
        # Chosen by simulating the HPA over a trace where it was; else enough for the peak
        # without headroom, scaling out before a replica's CPU passes the share the headroom
        # leaves it.
        min_replicas=hpa.min_replicas if hpa else max(1, math.ceil(target.peak_qps / per_replica)),
        max_replicas=int(best["replicas"]),
        cpu_per_replica=int(best["threads_per_worker"]),
        rss_mb_per_replica=measured.rss_mb_per_worker,
        target_cpu_pct=round(hpa.target_utilization * 100)
        if hpa
        else max(10, min(90, round(100 / (1 + target.headroom)))),
        node_selector={"node.kubernetes.io/instance-type": str(best["server_id"])},
        model_sha256=measured.model_sha256,
        model_artifact=measured.model_artifact,
    )
