"""From measurements to servers: per catalog server, the capacity one server sustains within the
SLO, how many servers the target needs, what they cost, and the one recommendation.

capacity(server) = the highest arrival rate at which an M/G/c simulation meets the SLO, where
c = workers that fit on the server and the service times are the ones measured on a host,
divided by the server's scale factor from that host (bench.capacity.scaling, with the
calibration stored in that host's rows). servers = ceil(peak * (1 + headroom) / capacity). The
band comes from the scale factor's band.

Behind a response cache, the simulation replays hits and misses in the measured hit ratio
(`queueing.cache_mix`); the same configuration without the cache is sized from the misses alone
(hit ratio 0), and the difference in servers is what the cache saved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.capacity.catalog import Catalog, CpuSpec, Server
from bench.capacity.measured import DEPLOYABLE, MeasuredConfig, MeasuredHost
from bench.capacity.queueing import capacity_qps, predicted_percentile_ms
from bench.capacity.scaling import (
    core_sharing,
    gpu_status,
    scale,
    worker_cores,
    workers_per_server,
)

SECONDS_PER_MONTH = 30.44 * 24 * 3600


@dataclass(frozen=True)
class Target:
    peak_qps: float
    percentile: str
    slo_ms: float
    headroom: float
    min_servers: int = 1
    # Generative models: TTFT and TPOT SLOs at `percentile`, ms (None: not a constraint).
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None

    @property
    def provisioned_qps(self) -> float:
        return self.peak_qps * (1.0 + self.headroom)

    def describe(self) -> str:
        return (
            f"{self.peak_qps:g} requests/s at {self.percentile} under {self.slo_ms:g} ms "
            f"(+{self.headroom:.0%} headroom)"
        )


def size_server(
    measured: MeasuredConfig,
    server: Server,
    host: dict,
    target: Target,
    host_spec: CpuSpec | None = None,
) -> dict:
    """One sizing row: this configuration on this server."""
    row: dict = {
        "configuration": measured.label,
        "tier": measured.tier,
        # The configuration's fields themselves, so that nothing downstream parses the label.
        **{group: measured.config[group]["name"] for group in DEPLOYABLE},
        "server_id": server.id,
        "server": server.name,
        "cpu": server.cpu.name,
        "cores": server.cpu.cores,
        "memory_gb": server.memory_gb,
        "threads_per_worker": measured.threads_per_worker,
        "precision": measured.precision,
        # Which valid points the service times came from, and which points were left out.
        "sized_from": measured.service_points,
        "left_out": measured.left_out,
    }
    if measured.uses_gpu or server.gpus:
        status = gpu_status(server, measured.uses_gpu)
        if measured.uses_gpu or status != "not measured":
            row.update(tag=status, notes="GPU servers are sized from GPU runs only")
            return _unsized(row, status)
        row["gpu"] = f"{', '.join(g.name for g in server.gpus)} (not measured; CPU only)"
    factor = scale(
        host,
        server,
        measured.precision,
        "compute",
        host_spec=host_spec,
        # The host's figure for the library the model ran on: torch and ONNX Runtime GEMMs
        # differ twofold on some CPUs.
        backend=measured.config["backend"]["name"],
    )
    workers, limited_by = workers_per_server(
        server, measured.threads_per_worker, measured.rss_mb_per_worker
    )
    threads = measured.threads_per_worker
    # The workers busy beside each other on the server, against those busy on the host when the
    # service times were measured (see FORMULA: core sharing).
    model = measured.core_sharing
    sharing = core_sharing(host, workers * threads, worker_cores(server.cpu), model) / core_sharing(
        host, measured.workers * threads, float(host.get("host_cores") or 1), model
    )
    factor = factor.times(sharing).drifted(*measured.drift)
    row.update(
        workers_per_server=workers,
        workers_limited_by=limited_by,
        core_sharing=sharing,
        core_sharing_from="model" if math.isfinite(model) else "host calibration",
        host_drift_slowest=measured.drift[0],
        host_drift_fastest=measured.drift[1],
        scale_factor=factor.factor,
        scale_low=factor.low,
        scale_high=factor.high,
        tag=factor.tag,
    )
    if workers < 1:
        return _unsized(row, f"does not fit: limited by {limited_by}")
    capacities = {
        name: capacity_qps(
            measured.service_s / f,
            workers,
            target.slo_ms,
            target.percentile,
            extra_s=measured.overhead_s,
        )
        for name, f in (("", factor.factor), ("_low", factor.low), ("_high", factor.high))
    }
    capacity = capacities[""]
    row.update({f"capacity_qps{k}": v for k, v in capacities.items()})
    if capacity <= 0:
        return _unsized(row, "cannot meet the SLO at any load: the service time alone is too slow")
    servers = max(target.min_servers, math.ceil(target.provisioned_qps / capacity))
    row["servers"] = servers
    row["servers_high"] = (
        max(target.min_servers, math.ceil(target.provisioned_qps / capacities["_low"]))
        if capacities["_low"] > 0
        else np.nan
    )
    row["replicas"] = servers * workers
    if math.isfinite(measured.cache_hit_ratio):
        row.update(_cache_saving(measured, factor.factor, workers, target, servers))
    row[f"predicted_{target.percentile}_ms"] = predicted_percentile_ms(
        measured.service_s / factor.factor,
        target.peak_qps / servers,
        workers,
        target.percentile,
        extra_s=measured.overhead_s,
    )
    row["price_eur_month"] = server.price.eur_per_month if server.price else np.nan
    row["price_as_of"] = server.price.as_of if server.price else ""
    row["monthly_cost_eur"] = servers * server.price.eur_per_month if server.price else np.nan
    row["cost_per_million_eur"] = (
        row["monthly_cost_eur"] / (target.peak_qps * SECONDS_PER_MONTH / 1e6)
        if server.price
        else np.nan
    )
    notes = list(server.notes)
    batching = measured.config["strategy"].get("batching") or {}
    if batching.get("max_batch_size", 1) > 1:
        # Per-call compute times of a batching run mix batch sizes; the simulation serves one
        # request per call, so it underrates what batching adds at high load.
        notes.insert(0, "dynamic batching is not simulated: capacity from per-call times")
    row["notes"] = "; ".join(notes)
    return row


def _cache_saving(
    measured: MeasuredConfig, factor: float, workers: int, target: Target, servers: int
) -> dict:
    """The cache's hit ratio, the servers the same configuration needs without it (sized from
    the misses' service times alone), and how many fewer the cache needs."""
    row: dict = {"cache_hit_ratio": measured.cache_hit_ratio}
    if not len(measured.miss_service_s):
        return {**row, "servers_without_cache": np.nan, "cache_saved_servers": np.nan}
    uncached = capacity_qps(
        measured.miss_service_s / factor, workers, target.slo_ms, target.percentile
    )
    without = (
        max(target.min_servers, math.ceil(target.provisioned_qps / uncached))
        if uncached > 0
        else np.nan
    )
    row["capacity_qps_without_cache"] = uncached
    row["servers_without_cache"] = without
    row["cache_saved_servers"] = without - servers if uncached > 0 else np.nan
    return row


def _unsized(row: dict, reason: str) -> dict:
    row["servers"] = np.nan
    row["unsized_reason"] = reason
    return row


def sizing_table(
    configs: list[MeasuredConfig], catalog: Catalog, host: dict, target: Target
) -> pd.DataFrame:
    """Every configuration that met its accuracy floor, on every catalog server."""
    host_spec = catalog.cpu_for_host(str(host.get("host_cpu_model", "")))
    rows = [
        size_server(measured, server, host, target, host_spec)
        for measured in configs
        if measured.accuracy_ok and len(measured.service_s)
        for server in catalog.servers
    ]
    return pd.DataFrame(rows)


def hosts_sizing(
    hosts: list[tuple[MeasuredHost, list[MeasuredConfig]]], catalog: Catalog, target: Target
) -> pd.DataFrame:
    """`sizing_table` for each measuring host's configurations, scaled from that host's own
    calibration; `host` and `host_id` say which host measured a row. A server that a measuring
    host is (its CPU) is sized from that host's rows alone."""
    frames = []
    for host, configs in hosts:
        table = sizing_table(configs, catalog, host.facts, target)
        if table.empty:
            continue
        table.insert(1, "host", host.name)
        table.insert(2, "host_id", host.id)
        if host.note:
            notes = table["notes"] if "notes" in table else pd.Series("", index=table.index)
            table["notes"] = [
                host.note + (f"; {n}" if isinstance(n, str) and n else "") for n in notes
            ]
        frames.append(table)
    if not frames:
        return pd.DataFrame()
    return _measured_where_measured(pd.concat(frames, ignore_index=True))


def _measured_where_measured(sizing: pd.DataFrame) -> pd.DataFrame:
    """A catalog server whose CPU a measuring host has is sized from that host's own rows
    (tagged `measured`) only: another host's estimate scaled to it is dropped."""
    if "tag" not in sizing or "host_id" not in sizing:
        return sizing
    measured = sizing[sizing["tag"] == "measured"]
    by = set(zip(measured["server_id"], measured["host_id"], strict=True))
    servers = {server for server, _ in by}
    keep = [
        server not in servers or (server, host) in by
        for server, host in zip(sizing["server_id"], sizing["host_id"], strict=True)
    ]
    return sizing[keep].reset_index(drop=True)


def recommend(sizing: pd.DataFrame) -> pd.Series | None:
    """The row to deploy: the cheapest per month where prices are known; else the fewest cores
    in all (a proxy for cost), then the fewest servers."""
    sized = sizing[sizing["servers"].notna()]
    if sized.empty:
        return None
    priced = sized[sized["monthly_cost_eur"].notna()] if "monthly_cost_eur" in sized else sized[:0]
    if not priced.empty:
        return priced.sort_values(["monthly_cost_eur", "servers"]).iloc[0]
    return (
        sized.assign(_cores=sized["servers"] * sized["cores"])
        .sort_values(["_cores", "servers", "memory_gb"])
        .iloc[0]
    )


def recommendation_sentence(
    best: pd.Series | None, target: Target, model: str, host: str | None = None
) -> str:
    """The plan in one sentence; `host` names the measuring host, where results came from
    several."""
    if best is None:
        return (
            f"No measured configuration can serve {target.describe()} on any catalog server; "
            "see the sizing table for why."
        )
    cost = (
        f"about EUR {best['monthly_cost_eur']:,.0f} a month (prices as of {best['price_as_of']})"
        if pd.notna(best.get("monthly_cost_eur"))
        else "at a price the catalog does not know (set catalog.prices to compare costs)"
    )
    servers = int(best["servers"])
    band = ""
    if pd.notna(best.get("servers_high")) and int(best["servers_high"]) != servers:
        band = f", {int(best['servers_high'])} if the server is at the slow end of its band"
    spare = " (one server: no spare; set plan.min_servers=2 for redundancy)" if servers == 1 else ""
    return (
        f"To serve {target.describe()} with {model}, deploy {servers} x {best['server']}{spare} "
        f"({int(best['replicas'])} replicas of {int(best['threads_per_worker'])} "
        f"thread{'s' if best['threads_per_worker'] != 1 else ''}, {best['configuration']}"
        f"{f' as measured on {host}' if host else ''}), "
        f"{cost}; estimate {best['tag']}{band}.{_cache_sentence(best)}{_provenance(best)}"
    )


def _cache_sentence(best: pd.Series) -> str:
    """What the response cache saved, where the configuration ran behind one."""
    ratio = best.get("cache_hit_ratio")
    if ratio is None or pd.isna(ratio):
        return ""
    without = best.get("servers_without_cache")
    if without is None or pd.isna(without):
        return (
            f" Its response cache answered {ratio:.0%} of requests; without it no number of "
            "servers meets the SLO (from the misses' service times)."
        )
    saved = int(best["cache_saved_servers"])
    return (
        f" Its response cache answered {ratio:.0%} of requests: without it the same "
        f"configuration needs {int(without)} server{'s' if without != 1 else ''}, so it saves "
        f"{saved} server{'s' if saved != 1 else ''} (if the hit ratio holds in production)."
    )


def _provenance(best: pd.Series) -> str:
    """Which valid points the sizing came from, and the invalid ones left out."""
    used = best.get("sized_from")
    if not isinstance(used, str) or not used:
        return ""
    dropped = best.get("left_out")
    dropped = f"; left out as invalid: {dropped}" if isinstance(dropped, str) and dropped else ""
    return f" Sized from the valid point(s) {used}{dropped}."


def no_valid_point_sentence(target: Target, left_out: list[str]) -> str:
    """Why there is no recommendation when no measured point is valid: each point, and why."""
    more = f"; and {len(left_out) - 5} more" if len(left_out) > 5 else ""
    listed = "; ".join(left_out[:5]) + more
    return (
        f"Cannot recommend a deployment for {target.describe()}: no load point is valid, and "
        f"the planner sizes only from valid points. {listed}. See each point's verdict "
        "(invalid_reasons and the check_* columns of results.parquet, or the report's verdicts), "
        "fix what it names and run again."
    )
