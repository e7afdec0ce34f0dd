"""Measured here, predicted there, checked: each measured tier's capacity at the SLO predicted
from another tier's measurement plus the two calibrations, beside the capacity that tier
really sustained.

A tier is where points ran (`tier` in every row, `bench.results.tier`): a host, optionally
narrowed by a CPU limit or an edge device. For every pair of measured tiers (from, to) and every
configuration (model / backend / optimization) measured on both:

    predicted = the M/G/c capacity at the SLO of the `from` service times divided by
                factor, with the `to` tier's workers (bench.capacity.queueing)
    factor    = host factor x CPU factor
    host factor: the two hosts' calibrations (bench.capacity.scaling.host_scale); 1 on one host
    CPU factor:  cores a worker gets on `to` / cores a worker gets on `from`, where a worker gets
                 min(its threads, the CPU its replica may use / the replica's workers), the CPU
                 being the limit (a CFS quota, an edge device's cores) or else the host's cores
    measured  = the highest throughput of a valid point on `to` whose percentile met the SLO
    error     = (predicted - measured) / measured
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.capacity.measured import (
    MeasuredConfig,
    deployable,
    measured_configs,
    measured_hosts,
    sound,
)
from bench.capacity.planner import Target
from bench.capacity.queueing import capacity_qps
from bench.capacity.scaling import host_scale

# The configuration compared across tiers: the strategy is part of how a tier was made.
COMPARED = ("model", "backend", "optimization")
COLUMNS = (
    "model",
    "configuration",
    "from_tier",
    "to_tier",
    "predicted_qps",
    "predicted_low_qps",
    "predicted_high_qps",
    "measured_qps",
    "error_pct",
    "from_measured_qps",
    "from_strategy",
    "to_strategy",
    "from_host",
    "to_host",
    "scale_factor",
    "host_factor",
    "cpu_factor",
    "from_cpus_per_worker",
    "to_cpus_per_worker",
    "to_workers",
    "tag",
    "measured_from",
)


@dataclass(frozen=True)
class TierEntry:
    """One configuration as measured on one tier of one host."""

    tier: str
    host_id: str
    host_name: str
    host: dict  # the host's facts (host_*, calib_*)
    measured: MeasuredConfig
    rows: pd.DataFrame  # its sound rows
    cpus_per_worker: float

    @property
    def configuration(self) -> str:
        return " / ".join(self.measured.config[g]["name"] for g in COMPARED)


def measured_capacity(rows: pd.DataFrame, target: Target) -> tuple[float, str]:
    """The highest throughput a valid point sustained with its percentile within the SLO, and
    that point's label; (nan, "") when none met it."""
    column = f"latency_{target.percentile}_ms"
    if rows.empty or column not in rows:
        return math.nan, ""
    met = rows[rows[column] <= target.slo_ms]
    if met.empty:
        return math.nan, ""
    best = met.loc[met["achieved_qps"].idxmax()]
    return float(best["achieved_qps"]), str(best.get("label", ""))


def _cpus_per_worker(measured: MeasuredConfig, rows: pd.DataFrame, host_cores: int) -> float:
    """Cores one worker may use: its threads, at most its share of its replica's CPU (the
    limit where there is one, else the host's cores)."""
    limit = pd.to_numeric(rows.get("cpu_limit"), errors="coerce") if "cpu_limit" in rows else None
    limit = float(limit.dropna().iloc[0]) if limit is not None and limit.notna().any() else math.nan
    replicas = int(pd.to_numeric(rows.get("replicas"), errors="coerce").fillna(1).max() or 1)
    per_replica = limit if limit > 0 else host_cores / replicas
    workers_per_replica = max(1, measured.workers // replicas)
    return min(float(measured.threads_per_worker), per_replica / workers_per_replica)


def tier_entries(frame: pd.DataFrame) -> list[TierEntry]:
    """Every configuration measured on every tier of every host, from its valid rows."""
    if frame.empty or "tier" not in frame:
        return []
    entries = []
    for host in measured_hosts(frame):
        for tier, rows in host.rows.groupby("tier", sort=True):
            for measured in measured_configs(rows, host.cores):
                if not measured.accuracy_ok or not len(measured.service_s):
                    continue
                own = rows[sound(rows) & rows["config"].map(_deployable_of(measured))]
                entries.append(
                    TierEntry(
                        tier=str(tier),
                        host_id=host.id,
                        host_name=host.name,
                        host=host.facts,
                        measured=measured,
                        rows=own,
                        cpus_per_worker=_cpus_per_worker(measured, own, host.cores),
                    )
                )
    return entries


def _deployable_of(measured: MeasuredConfig):
    """A test of a row's stored config: is it `measured`'s deployable configuration?"""
    return lambda config_json: deployable(config_json) == measured.config


def predict(source: TierEntry, target_entry: TierEntry, target: Target) -> dict:
    """One row: `target_entry`'s capacity predicted from `source`'s measurement."""
    host = host_scale(
        source.host,
        target_entry.host,
        source.measured.precision,
        source.measured.config["backend"]["name"],
    )
    cpu = target_entry.cpus_per_worker / source.cpus_per_worker
    workers = target_entry.measured.workers
    service = source.measured.service_s
    predicted = {
        name: capacity_qps(service / (f * cpu), workers, target.slo_ms, target.percentile)
        for name, f in (("", host.factor), ("_low", host.low), ("_high", host.high))
    }
    measured, point = measured_capacity(target_entry.rows, target)
    from_measured, _ = measured_capacity(source.rows, target)
    error = (predicted[""] - measured) / measured * 100 if measured > 0 else np.nan
    return {
        "model": source.measured.config["model"]["name"],
        "configuration": source.configuration,
        "from_tier": source.tier,
        "to_tier": target_entry.tier,
        "predicted_qps": predicted[""],
        "predicted_low_qps": predicted["_low"],
        "predicted_high_qps": predicted["_high"],
        "measured_qps": measured,
        "error_pct": error,
        "from_measured_qps": from_measured,
        "from_strategy": source.measured.config["strategy"]["name"],
        "to_strategy": target_entry.measured.config["strategy"]["name"],
        "from_host": source.host_name,
        "to_host": target_entry.host_name,
        "scale_factor": host.factor * cpu,
        "host_factor": host.factor,
        "cpu_factor": cpu,
        "from_cpus_per_worker": source.cpus_per_worker,
        "to_cpus_per_worker": target_entry.cpus_per_worker,
        "to_workers": workers,
        "tag": host.tag,
        "measured_from": point,
    }


def cross_tier_table(frame: pd.DataFrame, target: Target) -> pd.DataFrame:
    """Every measured tier's capacity predicted from every other tier that measured the same
    configuration; empty when fewer than two tiers measured one."""
    entries = tier_entries(frame)
    rows = [
        predict(source, to, target)
        for source in entries
        for to in entries
        if source.configuration == to.configuration
        and (source.tier, source.host_id) != (to.tier, to.host_id)
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))
