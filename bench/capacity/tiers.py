"""Measured here, predicted there, checked: each measured tier's capacity at the SLO predicted
from another tier's measurement plus the two calibrations, beside the capacity that tier
really sustained.

A tier is where points ran (`tier` in every row, `bench.results.tier`): a host, optionally
narrowed by a CPU limit or an edge device. For every pair of measured tiers (from, to) and every
configuration (model / backend / optimization) measured on both:

    predicted = the M/G/c capacity at the SLO of the `from` service times divided by
                factor, with the `to` tier's workers (bench.capacity.queueing)
    factor    = host factor x CPU factor x core sharing x the slowest speed of the `from`
                host over its points, the band's high end by the fastest instead
                (bench.capacity.measured.host_drift, Scale.drifted)
    host factor: the two hosts' calibrations (bench.capacity.scaling.host_scale); 1 on one host
    core sharing: s(cores busy on `to`) / s(cores busy on `from`), busy = workers x the cores a
                 worker gets (bench.capacity.scaling.core_sharing: one core's rate falls with
                 the cores busy beside it, as the model's own probe measured on that host,
                 else the host's calibration)
    CPU factor:  speed(p_to) / speed(p_from), where p is the cores a worker gets: min(its
                 threads, the CPU its replica may use / the replica's workers), that CPU being
                 the limit (a CFS quota, an edge device's cores) or else the host's cores, and
                 speed(p) = 1 / ((1 - f) / min(p, 1) + f / p)   (Amdahl's law; below one core
                 a worker runs at p of one core's speed, whatever f)
                 f, the share of a request's work that threads share: from the model's own
                 thread probe on `from` (its times at 1 and n threads, calls back to back
                 where it took those, as a worker near capacity serves) where it probed, or
                 on another tier of the same host where `from` pinned its threads, else
                 half the GEMM calibration's, which bounds it (a big GEMM parallelises best of
                 all); the band spans f from 0 to that bound
    measured  = the highest throughput of a valid point on `to` whose percentile met the SLO
    ceiling   = the lowest rate offered above it at which a point on `to` missed the SLO (any
                verdict: an overloaded point is unstable too); the capacity lies between the
                two, as finely as the search probed
    error     = (predicted - measured) / measured; within the measurement when
                measured <= predicted < ceiling
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from bench.capacity.measured import (
    MeasuredConfig,
    deployable,
    measured_configs,
    measured_hosts,
    sound,
    text_column,
    was_measured,
)
from bench.capacity.planner import Target
from bench.capacity.queueing import capacity_qps
from bench.capacity.scaling import core_sharing, host_scale

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
    "measured_ceiling_qps",
    "error_pct",
    "within_measured",
    "from_measured_qps",
    "from_strategy",
    "to_strategy",
    "from_host",
    "to_host",
    "scale_factor",
    "host_factor",
    "cpu_factor",
    "core_sharing",
    "from_cpus_per_worker",
    "to_cpus_per_worker",
    "to_workers",
    "parallel_share",
    "parallel_share_from",
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
    tried: pd.DataFrame  # every measured row of it, valid or not
    cpus_per_worker: float
    share: float  # f, the parallel share of a request's work (parallel_share)
    share_upper: float
    share_from: str

    @property
    def configuration(self) -> str:
        return _compared(self.measured.config)


def measured_capacity(rows: pd.DataFrame, target: Target) -> tuple[float, str]:
    """The highest throughput a valid point sustained with its percentile within the SLO, and
    that point's label; (nan, "") when none met it. Open-loop points only where there are any:
    the capacity predicted is that under random arrivals, which a closed loop (a search's
    probe) does not offer."""
    column = f"latency_{target.percentile}_ms"
    if rows.empty or column not in rows:
        return math.nan, ""
    open_loop = rows[rows["target_qps"].notna()] if "target_qps" in rows else rows[:0]
    rows = open_loop if not open_loop.empty else rows
    met = rows[rows[column] <= target.slo_ms]
    if met.empty:
        return math.nan, ""
    best = met.loc[met["achieved_qps"].idxmax()]
    return float(best["achieved_qps"]), str(best.get("label", ""))


def measured_ceiling(tried: pd.DataFrame, target: Target, capacity: float) -> float:
    """The lowest rate offered above `capacity` at which a point missed the SLO, valid or not
    (nan when none did): the measured capacity is below it."""
    column = f"latency_{target.percentile}_ms"
    if tried.empty or column not in tried or "target_qps" not in tried:
        return math.nan
    offered = pd.to_numeric(tried["target_qps"], errors="coerce")
    above = 0.0 if math.isnan(capacity) else capacity
    missed = offered[(tried[column] > target.slo_ms) & (offered > above)]
    return float(missed.min()) if not missed.empty else math.nan


def _cpus_per_worker(measured: MeasuredConfig, rows: pd.DataFrame, host_cores: int) -> float:
    """Cores one worker may use: its threads, at most its share of its replica's CPU (the
    limit where there is one, else the host's cores)."""
    limits = _numbers(rows, "cpu_limit").dropna()
    limit = float(limits.iloc[0]) if not limits.empty else math.nan
    replicas = int(_numbers(rows, "replicas").fillna(1).max()) if not rows.empty else 1
    replicas = max(1, replicas)
    per_replica = limit if limit > 0 else host_cores / replicas
    workers_per_replica = max(1, measured.workers // replicas)
    return min(float(measured.threads_per_worker), per_replica / workers_per_replica)


# The thread probe's timings in `predictor_threads_choice`: "1: 2.81 ms, 2: 2.75 ms", after idle
# gaps and then, introduced by BACK_TO_BACK (`bench.backends.threads` writes it so), back to back.
BACK_TO_BACK = "back to back"
_PROBED = re.compile(r"(\d+): ([\d.]+) ms")


def amdahl_share(speedup: float, threads: float) -> float:
    """The parallel share f that gives `speedup` on `threads` threads by Amdahl's law, in
    [0, 1]."""
    if threads <= 1 or not math.isfinite(speedup) or speedup <= 0:
        return 0.0
    return min(1.0, max(0.0, (1 - 1 / speedup) / (1 - 1 / threads)))


def speed(cores: float, share: float) -> float:
    """A worker's speed on `cores` cores relative to one core: Amdahl's law for a parallel
    share `share`; below one core, that fraction of one core's speed."""
    return 1.0 / ((1 - share) / min(cores, 1.0) + share / cores)


def parallel_share(rows: pd.DataFrame, host: dict) -> tuple[float, float, str]:
    """f for a configuration measured in `rows` (value, upper bound, where it came from): the
    model's own thread probe in the first of `rows` where it ran, else half the host
    calibration's GEMM share (all threads against one), which bounds it from above."""
    gemm = amdahl_share(
        _ratio(host.get("calib_fp32_gflops_all_threads"), host.get("calib_fp32_gflops_per_thread")),
        float(host.get("calib_threads_all") or 1),
    )
    upper = gemm if gemm > 0 else 1.0
    choice = text_column(rows, "predictor_threads_choice")
    for text, tier in zip(choice, text_column(rows, "tier"), strict=True):
        # The back-to-back timings where the probe took them (a worker near capacity serves
        # so), else those after idle gaps.
        after = str(text).split(BACK_TO_BACK, 1)[-1].split(";", 1)[0]
        timed = {int(n): float(ms) for n, ms in _PROBED.findall(after)}
        if 1 in timed and len(timed) > 1:
            most = max(timed)
            share = amdahl_share(timed[1] / timed[most], most)
            return share, max(share, upper), f"thread probe {timed} on {tier or 'this host'}"
    # No probe (threads pinned): f lies between 0 (threads do not help) and the GEMM's (a big
    # GEMM is as parallel as work gets); MiniLM's requests here shared about half of theirs.
    return upper / 2, upper, "half the GEMM calibration's"


def _numbers(rows: pd.DataFrame, column: str) -> pd.Series:
    """A column as numbers (NaN where missing or not a number)."""
    if column not in rows:
        return pd.Series(math.nan, index=rows.index, dtype=float)
    return pd.to_numeric(rows[column], errors="coerce")


def _ratio(a, b) -> float:
    try:
        return float(a) / float(b)
    except (TypeError, ValueError, ZeroDivisionError):
        return math.nan


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
                mine = rows["config"].map(_deployable_of(measured))
                own = rows[sound(rows) & mine]
                # f is the model's on this host: a tier whose threads were pinned (an edge
                # device's) takes it from the same configuration's probe on another tier.
                everywhere = host.rows[
                    sound(host.rows) & host.rows["config"].map(_compared_as(measured))
                ]
                share, upper, where = parallel_share(
                    pd.concat([own, everywhere.drop(own.index)]), host.facts
                )
                entries.append(
                    TierEntry(
                        tier=str(tier),
                        host_id=host.id,
                        host_name=host.name,
                        host=host.facts,
                        measured=measured,
                        rows=own,
                        tried=rows[mine & was_measured(rows)],
                        cpus_per_worker=_cpus_per_worker(measured, own, host.cores),
                        share=share,
                        share_upper=upper,
                        share_from=where,
                    )
                )
    return entries


def _compared(config: dict) -> str:
    """What tiers compare of a configuration (COMPARED), as "minilm / onnxruntime / none"."""
    return " / ".join(config[g]["name"] for g in COMPARED)


def _compared_as(measured: MeasuredConfig):
    """A test of a row's stored config: is it `measured`'s model, backend and optimization, on
    whichever tier?"""
    wanted = _compared(measured.config)
    return lambda config_json: _compared(deployable(config_json)) == wanted


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
    p_from, p_to = source.cpus_per_worker, target_entry.cpus_per_worker
    cpus = {f: speed(p_to, f) / speed(p_from, f) for f in (source.share, 0.0, source.share_upper)}
    workers = target_entry.measured.workers
    sharing = _busy_sharing(target_entry, workers) / _busy_sharing(source, source.measured.workers)
    cpus = {f: c * sharing for f, c in cpus.items()}
    cpu = cpus[source.share]
    scaled = replace(
        host,
        factor=host.factor * cpu,
        low=host.low * min(cpus.values()),
        high=host.high * max(cpus.values()),
    ).drifted(*source.measured.drift)
    predicted = {
        name: capacity_qps(
            source.measured.service_s / factor,
            workers,
            target.slo_ms,
            target.percentile,
            extra_s=source.measured.overhead_s,
        )
        for name, factor in (("", scaled.factor), ("_low", scaled.low), ("_high", scaled.high))
    }
    measured, point = measured_capacity(target_entry.rows, target)
    ceiling = measured_ceiling(target_entry.tried, target, measured)
    from_measured, _ = measured_capacity(source.rows, target)
    error = (predicted[""] - measured) / measured * 100 if measured > 0 else np.nan
    within = bool(measured <= predicted[""] < (math.inf if math.isnan(ceiling) else ceiling))
    return {
        "model": source.measured.config["model"]["name"],
        "configuration": source.configuration,
        "from_tier": source.tier,
        "to_tier": target_entry.tier,
        "predicted_qps": predicted[""],
        "predicted_low_qps": predicted["_low"],
        "predicted_high_qps": predicted["_high"],
        "measured_qps": measured,
        "measured_ceiling_qps": ceiling,
        "error_pct": error,
        "within_measured": within,
        "from_measured_qps": from_measured,
        "from_strategy": source.measured.config["strategy"]["name"],
        "to_strategy": target_entry.measured.config["strategy"]["name"],
        "from_host": source.host_name,
        "to_host": target_entry.host_name,
        "scale_factor": scaled.factor,
        "host_factor": host.factor,
        "cpu_factor": cpu / sharing,
        "core_sharing": sharing,
        "from_cpus_per_worker": source.cpus_per_worker,
        "to_cpus_per_worker": target_entry.cpus_per_worker,
        "to_workers": workers,
        "parallel_share": source.share,
        "parallel_share_from": source.share_from,
        "tag": host.tag,
        "measured_from": point,
    }


def _busy_sharing(entry: TierEntry, workers: int) -> float:
    """`core_sharing` on `entry`'s host with `workers` workers at work on their cores."""
    cores = float(entry.host.get("host_cores") or 1)
    return core_sharing(
        entry.host, workers * entry.cpus_per_worker, cores, entry.measured.core_sharing
    )


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
