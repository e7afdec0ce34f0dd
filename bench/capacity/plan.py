"""Write a run's plan: `plan/sizing.csv`, the recommendation, Kubernetes manifests, the image's
build context (`plan/image/`, its Dockerfile included) and the source document's tables, from
stored results. Re-planning for another target or catalog reads the same results and measures
nothing."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from bench import results
from bench.capacity.calibration import host_calibration
from bench.capacity.catalog import load_catalog
from bench.capacity.image import write_image
from bench.capacity.manifests import Deployment, write_manifests
from bench.capacity.measured import MeasuredConfig, measured_configs
from bench.capacity.planner import (
    SECONDS_PER_MONTH,
    Target,
    recommend,
    recommendation_sentence,
    sizing_table,
)
from bench.capacity.scaling import FORMULA
from bench.capacity.serverless import break_even_qps
from bench.capacity.tables import document_tables, to_markdown

PLAN_DIR = "plan"


def target_of(cfg: DictConfig) -> Target:
    plan = cfg.plan
    return Target(plan.peak_qps, plan.percentile, plan.slo_ms, plan.headroom, plan.min_servers)


def write_plan(path: str | os.PathLike, cfg: DictConfig) -> Path:
    """Plan from every result under `path` (a run or sweep folder); return the plan folder."""
    frame = results.load(path)
    folder = Path(path) / PLAN_DIR
    folder.mkdir(parents=True, exist_ok=True)
    host = frame.iloc[0].to_dict()
    host.update(host_calibration(cfg.cache_dir, cfg.plan.calibration_s))
    prices = OmegaConf.to_container(cfg.catalog.prices, resolve=True) if "catalog" in cfg else {}
    catalog = load_catalog(cfg.catalog.path if "catalog" in cfg else None, prices)
    target = target_of(cfg)
    configs = measured_configs(frame, int(host.get("host_cores") or os.cpu_count() or 1))
    sizing = sizing_table(configs, catalog, host, target)
    sizing.to_csv(folder / "sizing.csv", index=False)
    best = recommend(sizing) if not sizing.empty else None
    model = configs[0].config["model"]["name"] if configs else "the model"
    sentence = recommendation_sentence(best, target, model)
    (folder / "recommendation.txt").write_text(sentence + "\n")
    (folder / "formula.txt").write_text(FORMULA)
    deployment = None
    if best is not None:
        measured = next(c for c in configs if c.label == best["configuration"])
        deployment = _deployment(best, measured, target, cfg.plan.image)
        write_manifests(deployment, folder / "kubernetes")
        write_image(folder / "image", measured.config, deployment.cpu_per_replica)
    tables = document_tables(frame, sizing, best, deployment, catalog, target)
    markdown = [f"# Plan: {sentence}\n"]
    for number, (title, table) in enumerate(tables.items(), start=1):
        table.to_csv(folder / f"table{number}.csv", index=False)
        markdown.append(f"## {title}\n\n{to_markdown(table)}\n")
    break_even = serverless_break_even(frame, best, cfg.plan.eur_per_usd)
    if break_even:
        markdown.insert(1, f"{break_even}\n")
        (folder / "serverless.txt").write_text(break_even + "\n")
    (folder / "tables.md").write_text("\n".join(markdown))
    return folder


def serverless_break_even(
    frame: pd.DataFrame, best: pd.Series | None, eur_per_usd: float | None
) -> str | None:
    """One sentence comparing measured serverless cost with the recommended dedicated servers,
    or None when no serverless point was measured."""
    rows = frame[(frame["strategy"] == "serverless") & (frame["status"] == "measured")]
    costs = {
        column.removeprefix("cost_per_million_").upper(): rows[column].dropna()
        for column in rows.columns
        if column.startswith("cost_per_million_")
    }
    costs = {currency: values for currency, values in costs.items() if len(values)}
    if not costs:
        return None
    currency, values = next(iter(costs.items()))
    per_million = float(values.median())
    measured = f"Serverless measured {per_million:.2f} {currency} per million requests"
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


def _deployment(
    best: pd.Series, measured: MeasuredConfig, target: Target, image: str
) -> Deployment:
    per_replica = best["capacity_qps"] / best["workers_per_server"]
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
