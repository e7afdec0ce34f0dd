"""The source document's three tables, regenerated from measurements: deployment tiers mapped
to strategies and servers, baseline against optimized performance, and the Kubernetes
configuration of the recommendation. Each is a DataFrame (the plan store writes them)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.capacity.catalog import Catalog
from bench.capacity.manifests import MEMORY_LIMIT_MARGIN, MEMORY_REQUEST_MARGIN, Deployment
from bench.capacity.measured import DEPLOYABLE, host_ids, sound
from bench.capacity.planner import Target

# What a performance-table cell says where no valid point measured that side.
NO_VALID_POINT = "no valid point"


def _fmt(value: float, digits: int = 1) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:,.{digits}f}"


def tiers_table(
    frame: pd.DataFrame, sizing: pd.DataFrame, catalog: Catalog, target: Target
) -> pd.DataFrame:
    """The document's deployment environments, with what was measured and what they would
    need for the target where the catalog maps them to a server."""
    strategies = ", ".join(sorted(frame["strategy"].dropna().unique())) or "none"
    rows = []
    for tier in catalog.tiers:
        candidate = tier.candidate or {}
        cpu = candidate.get("cpu")
        known = cpu and "server_id" in sizing  # nothing sized: no column at all
        sized = sizing[sizing["server_id"].str.contains(cpu, na=False)] if known else sizing[:0]
        sized = sized[sized["servers"].notna()] if not sized.empty else sized
        need = (
            f"{int(sized['servers'].min())} x {sized.iloc[0]['server']}"
            if not sized.empty
            else "not mapped to a catalog server"
        )
        rows.append(
            {
                "Deployment environment": tier.name,
                "Hardware (document)": tier.spec,
                "Strategies measured here": strategies,
                f"Servers for {target.peak_qps:g} req/s": need,
                "Note": tier.note,
            }
        )
    return pd.DataFrame(rows)


def performance_table(frame: pd.DataFrame, best: pd.Series | None) -> pd.DataFrame:
    """Baseline (torch eager fp32, no optimization) against the recommended configuration,
    on the document's four metrics, each from VALID measured points only (of the host that
    measured the recommendation, where it names one): an invalid point's throughput is not a
    figure to quote. A side with no valid point says so instead of a number."""
    valid = frame[sound(frame)] if not frame.empty else frame
    if best is not None and "host_id" in best and not valid.empty:
        valid = valid[host_ids(valid) == best["host_id"]]
    baseline = valid[(valid["backend"] == "torch") & (valid["optimization"] == "none")]
    if best is not None:
        same = np.logical_and.reduce([valid[g] == best[g] for g in DEPLOYABLE])
        optimized = valid[same]
    else:
        optimized = valid
    if best is not None:
        technique = best["configuration"]
    elif optimized.empty:
        technique = "no valid point: nothing to quote"
    else:
        technique = "fastest valid point"

    def facts(rows: pd.DataFrame) -> dict[str, float]:
        if rows.empty:
            return dict.fromkeys(("latency", "throughput", "cpu", "memory"), np.nan)
        fastest = rows.loc[rows["achieved_qps"].idxmax()]
        return {
            "latency": float(rows["latency_p50_ms"].min()),
            "throughput": float(fastest["achieved_qps"]),
            "cpu": float(fastest["cpu_util_pct"]),
            "memory": float(rows["rss_peak_mb"].max()) / 1024,
        }

    def shown(rows: pd.DataFrame, key: str, digits: int) -> str:
        return _fmt(facts(rows)[key], digits) if not rows.empty else NO_VALID_POINT

    metrics = [
        ("Latency p50 (ms), lightest load", "latency", 1),
        ("Throughput (requests/s), highest measured", "throughput", 1),
        ("CPU utilization (%) at that throughput", "cpu", 0),
        ("Memory, peak RSS (GB)", "memory", 2),
    ]
    return pd.DataFrame(
        [
            {
                "Metric": name,
                "Baseline (torch eager fp32)": shown(baseline, key, digits),
                "Optimized": shown(optimized, key, digits),
                "Technique": technique,
            }
            for name, key, digits in metrics
        ]
    )


def kubernetes_table(d: Deployment | None) -> pd.DataFrame:
    """The document's Kubernetes parameters, with this plan's values and where they come from."""
    if d is None:
        return pd.DataFrame(columns=["Configuration parameter", "Value", "Derived from"])
    rows = [
        ("Deployment name", d.name, "model and backend"),
        ("Image", d.image, "plan.image; build it from the generated Dockerfile"),
        ("Replicas", str(d.replicas), "servers x workers per server, for peak x (1 + headroom)"),
        ("Resource requests (CPU)", f"{d.cpu_per_replica} cores", "the worker's threads"),
        ("Resource limits (CPU)", f"{d.cpu_per_replica} cores", "equal to requests: no throttling"),
        (
            "Resource requests (memory)",
            f"{d.rss_mb_per_replica * MEMORY_REQUEST_MARGIN:,.0f} MiB",
            f"measured peak RSS x {MEMORY_REQUEST_MARGIN}",
        ),
        (
            "Resource limits (memory)",
            f"{d.rss_mb_per_replica * MEMORY_LIMIT_MARGIN:,.0f} MiB",
            f"measured peak RSS x {MEMORY_LIMIT_MARGIN}",
        ),
        ("Service type", "LoadBalancer", "exposes the replicas"),
        ("Ingress controller", "nginx", "routes /v2 (Open Inference Protocol)"),
        (
            "Auto-scaling",
            f"HPA {d.min_replicas}-{d.max_replicas} replicas at {d.target_cpu_pct}% CPU",
            "min: the peak without headroom; max: what the servers hold",
        ),
    ]
    return pd.DataFrame(rows, columns=["Configuration parameter", "Value", "Derived from"])


def document_tables(
    frame: pd.DataFrame,
    sizing: pd.DataFrame,
    best: pd.Series | None,
    deployment: Deployment | None,
    catalog: Catalog,
    target: Target,
) -> dict[str, pd.DataFrame]:
    """title -> table, in the document's order."""
    return {
        "Deployment environments": tiers_table(frame, sizing, catalog, target),
        "Performance metrics and optimization": performance_table(frame, best),
        "Kubernetes configuration": kubernetes_table(deployment),
    }
