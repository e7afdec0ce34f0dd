"""Sizing a generative deployment under TTFT and TPOT SLOs, from stored generative points.

A server generating with continuous batching has no per-request service time to simulate:
its throughput grows with the sequences in flight until TTFT and TPOT give way. So the
capacity is measured, not simulated: per configuration, the highest achieved rate among its
valid points whose TTFT and TPOT at the plan's percentile meet `plan.slo_ttft_ms` and
`plan.slo_tpot_ms` (an `slo_search` or a `rate_sweep` finds it), with the output tokens per
second it served there. Then, as for every model: servers = ceil(peak * (1 + headroom) /
capacity), and the cost per million output tokens = the monthly cost over the tokens a month
at the peak.

On a catalog server the measured deployment (its replicas, as run) is assumed to serve at
the measured capacity times the server's memory-bound scale factor (decoding reads every
weight per token: memory bandwidth bounds it), with that factor's band; GPU servers are sized
from GPU runs only. A server the user runs (`strategy=endpoint`) is sized as itself: how many
copies of the deployment at its URL, hardware unknown to the harness.

The deployment of a recommendation served here (`generative_deployment`) is one pod per measured
replica, from the point the capacity came from: its CPU (whole cores covering the worker's
measured use, and at least its threads) and peak memory per replica, and an HPA on the requests
in flight per replica (`bench.capacity.manifests`), whose target is the mean in flight per
replica that point held while meeting the SLOs (measured from its request log: the time each
request spent between its send and its answer, over the window), less the plan's headroom.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.capacity.catalog import Catalog
from bench.capacity.manifests import Deployment, deployment_name
from bench.capacity.measured import DEPLOYABLE, MeasuredHost, deployable, sound
from bench.capacity.scaling import gpu_status, scale
from bench.results.store import REQUESTS_DIR

SECONDS_PER_MONTH = 30.44 * 24 * 3600
GENERATIVE_FORMULA = (
    "capacity(server) = the highest achieved rate of a valid point whose TTFT and TPOT at the "
    "plan's percentile meet plan.slo_ttft_ms and plan.slo_tpot_ms, x the server's memory-bound "
    "scale factor (1 where measured; a server the user runs is sized as itself); servers = "
    "ceil(peak * (1 + headroom) / capacity); cost per million output tokens = monthly cost / "
    "(peak x mean output tokens x seconds a month / 1e6)"
)
# Percentiles the generative columns store (`ttft_p50_ms` ...); others are judged at p99.
_STORED = ("p50", "p90", "p99")


def is_generative(frame: pd.DataFrame) -> bool:
    """Whether `frame` holds generative points (their TTFT columns)."""
    return "ttft_p50_ms" in frame and frame["ttft_p50_ms"].notna().any()


def stored_percentile(percentile: str) -> str:
    return percentile if percentile in _STORED else "p99"


def generative_capacity(
    rows: pd.DataFrame, percentile: str, slo_ttft_ms: float | None, slo_tpot_ms: float | None
) -> list[dict]:
    """Per configuration: its label, deployable config, and the highest valid rate meeting the
    SLOs, with its output tokens/s and output length; capacity 0 where no point meets them."""
    p = stored_percentile(percentile)
    generative = rows[sound(rows) & rows.get("ttft_p50_ms", pd.Series(dtype=float)).notna()]
    found = []
    for key, group in generative.groupby(
        generative["config"].map(lambda c: json.dumps(deployable(c), sort_keys=True))
    ):
        meets = pd.Series(True, index=group.index)
        if slo_ttft_ms is not None:
            meets &= group[f"ttft_{p}_ms"] <= slo_ttft_ms
        if slo_tpot_ms is not None:
            meets &= ~(group[f"tpot_{p}_ms"] > slo_tpot_ms)
        config = json.loads(key)
        entry = {
            "configuration": " / ".join(str(group.iloc[0][g]) for g in DEPLOYABLE),
            "config": config,
            "points": ", ".join(group["label"].astype(str)),
            "capacity_qps": 0.0,
            "capacity_output_tokens_per_s": 0.0,
            "output_tokens_mean": float(group["output_tokens_mean"].mean()),
            "replicas": int(group.iloc[0].get("replicas", 1) or 1),
            "precision": str(group.iloc[0].get("predictor_precision") or "fp32"),
            "uses_gpu": "cuda" in str(group.iloc[0].get("predictor_provider", "")).lower(),
            "served_here": config["strategy"]["name"] != "endpoint",
            "url": config["strategy"].get("url", ""),
        }
        if meets.any():
            best = group[meets].sort_values("achieved_qps").iloc[-1]
            entry.update(
                capacity_qps=float(best["achieved_qps"]),
                capacity_output_tokens_per_s=float(best["output_tokens_per_s"]),
                capacity_point=str(best["label"]),
                capacity_point_id=str(best["point_id"]),
                # What a replica held and used: of the harness's own workers only (a server
                # the user runs is not measured from here).
                **(per_replica(best) if entry["served_here"] else {}),
            )
        found.append(entry)
    return found


def generative_sizing(
    hosts: list[MeasuredHost],
    catalog: Catalog,
    peak_qps: float,
    headroom: float,
    min_servers: int,
    percentile: str,
    slo_ttft_ms: float | None,
    slo_tpot_ms: float | None,
) -> pd.DataFrame:
    """One row per configuration and server (a server the user runs: one row, itself)."""
    out = []
    for host in hosts:
        for c in generative_capacity(host.rows, percentile, slo_ttft_ms, slo_tpot_ms):
            base = {
                "configuration": c["configuration"],
                "host": host.name,
                "host_id": host.id,
                "sized_from": c.get("capacity_point", ""),
                "point_id": c.get("capacity_point_id", ""),
                "output_tokens_mean": c["output_tokens_mean"],
                **{key: c.get(key, np.nan) for key in PER_REPLICA},
            }
            if not c["served_here"]:
                out.append(_sized(base | {"server": f"the deployment at {c['url']}",
                                          "tag": "measured", "cores": np.nan,
                                          "memory_gb": np.nan},
                                  c, 1.0, 1.0, peak_qps, headroom, min_servers, None))  # fmt: skip
                continue
            for server in catalog.servers:
                row = base | {
                    "server_id": server.id,
                    "server": server.name,
                    "cores": server.cpu.cores,
                    "memory_gb": server.memory_gb,
                }
                if c["uses_gpu"] or server.gpus:
                    status = gpu_status(server, c["uses_gpu"])
                    if c["uses_gpu"] or status != "not measured":
                        out.append(row | {"tag": status, "servers": np.nan,
                                          "unsized_reason": status})  # fmt: skip
                        continue
                precision = c["precision"] if c["precision"] in ("fp32", "bf16", "int8") else "fp32"
                factor = scale(host.facts, server, precision, "memory")
                row["tag"] = factor.tag
                out.append(
                    _sized(row, c, factor.factor, factor.low, peak_qps, headroom, min_servers,
                           server.price)
                )  # fmt: skip
    return pd.DataFrame(out)


def _sized(
    row: dict,
    c: dict,
    factor: float,
    low: float,
    peak_qps: float,
    headroom: float,
    min_servers: int,
    price,
) -> dict:
    capacity = c["capacity_qps"] * factor
    row = row | {
        "scale_factor": factor,
        "capacity_qps": capacity,
        "capacity_output_tokens_per_s": c["capacity_output_tokens_per_s"] * factor,
        "replicas_per_server": c["replicas"],
    }
    if capacity <= 0:
        return row | {"servers": np.nan, "unsized_reason": "no measured rate meets the SLOs"}
    provisioned = peak_qps * (1.0 + headroom)
    servers = max(min_servers, math.ceil(provisioned / capacity))
    slow = c["capacity_qps"] * low
    monthly = servers * price.eur_per_month if price else np.nan
    tokens_month = peak_qps * c["output_tokens_mean"] * SECONDS_PER_MONTH
    return row | {
        "servers": servers,
        "servers_high": max(min_servers, math.ceil(provisioned / slow)) if slow > 0 else np.nan,
        "replicas": servers * c["replicas"],
        "monthly_cost_eur": monthly,
        "price_as_of": price.as_of if price else "",
        "cost_per_million_output_tokens_eur": monthly / (tokens_month / 1e6) if price else np.nan,
    }


# What a replica held and used at the point its configuration's capacity came from.
PER_REPLICA = ("in_flight_per_replica", "cpu_cores_per_replica", "rss_mb_per_replica")


def per_replica(row: pd.Series) -> dict[str, float]:
    """The point's mean requests in flight, CPU cores and peak memory (MB), per replica of the
    measured deployment. The cores are the workers' alone where they ran in their own processes
    (`protocol` not none), the harness's load driver taken off; in-process (`direct`), the
    process's, the load driver's share with them."""
    replicas = max(1, int(row.get("replicas") or 1))
    cores = float(row.get("cpu_cores_used", np.nan))
    if str(row.get("protocol", "none")) != "none":
        cores -= float(row.get("harness_cpu_cores_used", 0.0))
    return {
        "in_flight_per_replica": in_flight_mean(row) / replicas,
        "cpu_cores_per_replica": cores / replicas,
        "rss_mb_per_replica": float(row.get("rss_peak_mb", np.nan)) / replicas,
    }


def in_flight_mean(row: pd.Series) -> float:
    """The mean number of the point's requests in flight (sent, not yet answered) over its
    measured window, from its request log: each request's time in flight inside the window,
    summed, over the window's length (Little's law, counted, not assumed). What the workers'
    in-flight gauge read, up to the wire's share. NaN where the log or the window is not
    stored."""
    start, end = row.get("window_start_s", np.nan), row.get("window_end_s", np.nan)
    path = Path(str(row.get("run_dir", ""))) / REQUESTS_DIR / f"{row.get('point_id')}.parquet"
    if not (np.isfinite(start) and np.isfinite(end) and end > start) or not path.is_file():
        return np.nan
    log = pd.read_parquet(path, columns=["sent", "done"])
    sent = log["sent"].to_numpy(dtype=float)
    # A request unanswered when the point ended was in flight to the window's end.
    done = np.nan_to_num(log["done"].to_numpy(dtype=float), nan=end)
    sent_at = np.isfinite(sent)
    inside = np.clip(done[sent_at], start, end) - np.clip(sent[sent_at], start, end)
    return float(np.clip(inside, 0.0, None).sum() / (end - start))


def unmeasured(best: pd.Series) -> str:
    """What the manifests need of a sizing row's point that its results do not hold ("" where
    they hold it all): the requests it held in flight (from its request log) and its memory."""
    missing = [
        words
        for key, words in (
            ("in_flight_per_replica", "the requests it held in flight (its request log)"),
            ("rss_mb_per_replica", "its memory"),
        )
        if not float(best.get(key, np.nan)) > 0
    ]
    return " and ".join(missing)


def measured_threads(point: pd.Series) -> int:
    """The intra-op threads a replica ran with at `point`: as set, else as the runtime chose."""
    config = json.loads(point["config"])
    return int(config["backend"].get("threads") or point.get("predictor_threads") or 1)


def generative_deployment(
    best: pd.Series, point: pd.Series, image: str, peak_qps: float, headroom: float
) -> tuple[Deployment, str]:
    """The Deployment for a recommended sizing row `best` served here, from `point`, the row of
    the point its capacity came from; and, in words, where the HPA's in-flight target came
    from (for the manifests' README)."""
    config = deployable(point["config"])
    replicas_per_server = int(best["replicas_per_server"])
    threads = measured_threads(point)
    # Whole cores covering what a replica used, never fewer than its threads: a CPU limit below
    # them throttles the intra-op pool mid-token.
    used = float(best["cpu_cores_per_replica"])
    cores = max(threads, math.ceil(round(used, 2))) if np.isfinite(used) else threads
    held = float(best["in_flight_per_replica"])
    target = held / (1.0 + headroom)
    per_replica_qps = float(best["capacity_qps"]) / replicas_per_server
    deployment = Deployment(
        name=deployment_name(config),
        image=image,
        replicas=int(best["replicas"]),
        # Enough for the peak without headroom, as for every plan without a simulated HPA.
        min_replicas=max(1, math.ceil(peak_qps / per_replica_qps)),
        max_replicas=int(best["replicas"]),
        cpu_per_replica=cores,
        rss_mb_per_replica=float(best["rss_mb_per_replica"]),
        target_cpu_pct=None,
        target_in_flight=target,
        node_selector={"node.kubernetes.io/instance-type": str(best["server_id"])},
        model_sha256=str(point.get("model_sha256") or ""),
        model_artifact=str(point.get("model_artifact") or ""),
        generates=True,
    )
    source = (
        f"Its target, {target:.3g} requests in flight per pod on average, is the mean of "
        f"{held:.3g} per replica that the measured point {best['sized_from']} "
        f"(`point_id` {best['point_id']}, {float(point['achieved_qps']):.3g} requests/s on "
        f"{point.get('host_name') or 'the measuring host'}) held while meeting the TTFT and "
        f"TPOT SLOs, over 1 + the plan's "
        f"headroom of {headroom:g}: pods scale out before each holds what the SLOs were last "
        "seen met at. The in-flight mean is counted from that point's request log (each "
        "request's time between its send and its answer, over the window)."
    )
    return deployment, source


def manifests_sentence(d: Deployment) -> str:
    """What the plan's manifests deploy, in words, after the recommendation."""
    return (
        f" Manifests in plan/kubernetes/: {d.replicas} pods of {d.cpu_per_replica} "
        f"core{'s' if d.cpu_per_replica != 1 else ''}, memory above the "
        f"{d.rss_mb_per_replica:,.0f} MB peak measured, scaled by an HPA between "
        f"{d.min_replicas} and {d.max_replicas} on "
        f"{d.target_in_flight:.3g} requests in flight per pod (served to it by "
        "prometheus-adapter: see the README there)."
    )


def generative_sentence(
    best: pd.Series | None,
    peak_qps: float,
    percentile: str,
    slo_ttft_ms: float | None,
    slo_tpot_ms: float | None,
) -> str:
    """The generative plan in one sentence."""
    p = stored_percentile(percentile)
    slos = (
        " and ".join(
            f"{name} {p} under {value:g} ms"
            for name, value in (("TTFT", slo_ttft_ms), ("TPOT", slo_tpot_ms))
            if value is not None
        )
        or "no TTFT or TPOT SLO (plan.slo_ttft_ms, plan.slo_tpot_ms: the highest valid rate)"
    )
    if best is None:
        return (
            f"No measured generative configuration serves {peak_qps:g} requests/s with {slos} "
            "on any server; see the sizing table for why."
        )
    cost = (
        f"about EUR {best['monthly_cost_eur']:,.0f} a month, EUR "
        f"{best['cost_per_million_output_tokens_eur']:,.2f} per million output tokens"
        if pd.notna(best.get("monthly_cost_eur"))
        else "at a price the catalog does not know (set catalog.prices to compare costs)"
    )
    return (
        f"To serve {peak_qps:g} requests/s ({peak_qps * best['output_tokens_mean']:,.0f} output "
        f"tokens/s) with {slos}, deploy {int(best['servers'])} x {best['server']} "
        f"({int(best['replicas'])} replicas of {best['configuration']}; each server "
        f"{best['capacity_qps']:.3g} requests/s, {best['capacity_output_tokens_per_s']:,.0f} "
        f"output tokens/s at the SLOs), {cost}; estimate {best['tag']}. Sized from the valid "
        f"point {best['sized_from']}."
    )
