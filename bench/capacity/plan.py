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

from bench import results
from bench.capacity.catalog import Catalog, load_catalog
from bench.capacity.image import write_image
from bench.capacity.manifests import Deployment, manifests
from bench.capacity.measured import (
    MeasuredConfig,
    MeasuredHost,
    left_out,
    measured_configs,
    measured_hosts,
    unsized_configs,
)
from bench.capacity.monitoring import Objective, monitoring
from bench.capacity.planner import (
    SECONDS_PER_MONTH,
    Target,
    hosts_sizing,
    no_valid_point_sentence,
    recommend,
    recommendation_sentence,
)
from bench.capacity.scaling import FORMULA
from bench.capacity.serverless import break_even_qps, serverless_costs
from bench.capacity.store import PLAN_DIR, Plan
from bench.capacity.tables import document_tables

__all__ = ["PLAN_DIR", "Plan", "make_plan", "serverless_break_even", "target_of", "write_plan"]


def target_of(cfg: DictConfig) -> Target:
    plan = cfg.plan
    return Target(plan.peak_qps, plan.percentile, plan.slo_ms, plan.headroom, plan.min_servers)


def write_plan(path: str | os.PathLike, cfg: DictConfig) -> Path:
    """Plan from every result under `path` (a run or sweep folder); return the plan folder."""
    frame = results.load(path)
    has_catalog = "catalog" in cfg
    prices = OmegaConf.to_container(cfg.catalog.prices, resolve=True) if has_catalog else {}
    catalog = load_catalog(cfg.catalog.path if has_catalog else None, prices)
    pricing = (
        OmegaConf.to_container(cfg.catalog.serverless_pricing, resolve=True, enum_to_str=True)
        if has_catalog
        else {}
    )
    plan = make_plan(frame, catalog, target_of(cfg), pricing, cfg.plan.image, cfg.plan.eur_per_usd)
    return plan.write(path)


def make_plan(
    frame: pd.DataFrame,
    catalog: Catalog,
    target: Target,
    pricing: Mapping[str, Any],
    image: str,
    eur_per_usd: float | None = None,
) -> Plan:
    """The plan for stored results `frame`: each host's configurations scaled from that host's
    calibration (`calib_*` in its rows), against every server of `catalog`; `pricing` is
    `catalog.serverless_pricing`, `image` the image name the manifests give."""
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
    deployment, files, watch, build_image = None, {}, {}, None
    if best is not None:
        measured = _chosen(hosts, best)
        deployment = _deployment(best, measured, target, image)
        files = manifests(deployment)
        watch = monitoring(deployment, _objective(best, measured, target))
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
        manifests=files,
        monitoring=watch,
        image=build_image,
    )


def _chosen(
    hosts: list[tuple[MeasuredHost, list[MeasuredConfig]]], best: pd.Series
) -> MeasuredConfig:
    """The measured configuration a sizing row was sized from."""
    return next(
        config
        for host, found in hosts
        if host.id == best["host_id"]
        for config in found
        if config.label == best["configuration"]
    )


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
    best: pd.Series, measured: MeasuredConfig, target: Target, image: str
) -> Deployment:
    per_replica = _per_replica_qps(best)
    return Deployment(
        name=f"{measured.config['model']['name']}-{measured.config['backend']['name']}".replace(
            "_", "-"
        ),
        image=image,
        replicas=int(best["replicas"]),
        min_replicas=max(1, math.ceil(target.peak_qps / per_replica)),
        max_replicas=int(best["replicas"]),
        cpu_per_replica=int(best["threads_per_worker"]),
        rss_mb_per_replica=measured.rss_mb_per_worker,
        # Scale out before a replica's CPU passes the share the headroom leaves it.
        target_cpu_pct=max(10, min(90, round(100 / (1 + target.headroom)))),
        node_selector={"node.kubernetes.io/instance-type": str(best["server_id"])},
    )
