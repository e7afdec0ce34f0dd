"""What the planner needs from the results: per measuring host, its fingerprint and the
calibration stored with its rows; per deployable configuration on that host, the per-worker
service times, threads and memory of a worker, and its precision."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.capacity.queueing import cache_mix
from bench.results.store import REQUESTS_DIR

# Config groups that make a configuration deployable as is; the scenario only says how it was
# measured, so points of every scenario of one configuration are pooled.
DEPLOYABLE = ("model", "backend", "optimization", "strategy")


@dataclass(frozen=True)
class MeasuredConfig:
    label: str  # "minilm / onnxruntime / int8_dynamic / direct"
    config: dict  # the deployable part of the run config
    service_s: np.ndarray  # per-request server-side service times, seconds, in the order sent
    service_points: str  # which points they came from (valid ones only: see `sound`)
    workers: int  # workers serving in parallel on the measuring host
    threads_per_worker: int
    rss_mb_per_worker: float
    precision: str
    accuracy_ok: bool
    host_name: str
    uses_gpu: bool
    # The configuration's measured points left out as invalid, each with its verdict's reasons.
    left_out: str = ""
    # The artifact its valid points served (`model_sha256`, as the workers loaded it); "" where
    # the rows do not say, or say several.
    model_sha256: str = ""
    model_artifact: str = ""
    # Behind a response cache (`strategy.cache`): the share of requests it answered in the
    # points the service times came from, and the hits' and misses' service times apart
    # (`service_s` then mixes them in that proportion); NaN and empty without a cache.
    cache_hit_ratio: float = float("nan")
    hit_service_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    miss_service_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # Where it was measured (`tier` of its rows): one configuration may run at several tiers
    # of one host (a container with and without a CPU limit).
    tier: str = ""
    # Per request, from the same points: the time between sending it and its answer that the
    # worker did not spend on it (done - sent - queue - compute: the wire, the protocol, the
    # client), seconds; added to each simulated latency.
    overhead_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # How fast the host served this configuration across all its measured open-loop points,
    # valid or not, relative to the points the service times came from: (slowest, fastest)
    # point's speed, the slowest <= 1 <= the fastest (`host_drift`).
    drift: tuple[float, float] = (1.0, 1.0)
    # The model's own core sharing on the measuring host, as its run measured it
    # (`model_core_sharing`); NaN where the rows do not say (bench.capacity.scaling.core_sharing
    # then takes the host calibration's).
    core_sharing: float = float("nan")


def deployable(config_json: str) -> dict:
    """The deployable part of a row's stored config (`DEPLOYABLE`)."""
    config = json.loads(config_json)
    return {group: config[group] for group in DEPLOYABLE}


def _label(config: dict) -> str:
    label = " / ".join(config[g]["name"] for g in DEPLOYABLE)
    cache = config["strategy"].get("cache") or {}
    if cache.get("max_entries") is not None:
        label += f" + cache {cache['max_entries']} entries"
    elif cache.get("max_mb") is not None:
        label += f" + cache {cache['max_mb']:g} MB"
    return label


def measured_configs(results: pd.DataFrame, host_cores: int) -> list[MeasuredConfig]:
    """One entry per deployable configuration with at least one sound point (`sound`), sized
    from those points only; its invalid points are named in `left_out`."""
    rows = results[results["status"] == "measured"].copy()
    if rows.empty:
        return []
    rows["_deployable"] = rows["config"].map(lambda c: json.dumps(deployable(c), sort_keys=True))
    found = []
    for key, group in rows.groupby("_deployable", sort=True):
        usable = sound(group)
        if usable.any():
            found.append(_measured(json.loads(key), group, usable, host_cores))
    return found


def unsized_configs(results: pd.DataFrame) -> list[str]:
    """The labels of configurations measured with no sound point: none of them is sized."""
    rows = results[results["status"] == "measured"] if "status" in results else results
    if rows.empty or "config" not in rows:
        return []
    labels = rows["config"].map(lambda c: _label(deployable(c)))
    usable = set(labels[sound(rows)])
    return sorted(set(labels) - usable)


def sound(rows: pd.DataFrame) -> pd.Series:
    """Which rows the planner may size from: measured and VALID. Nothing is recommended from an
    INVALID point, whichever rule it failed: a point that missed the scenario's own SLO is left
    out too (its rule was the user's; the plan judges plan.slo_ms from the valid points)."""
    valid = rows["valid"].eq(True) if "valid" in rows else pd.Series(True, index=rows.index)
    return was_measured(rows) & valid


def was_measured(rows: pd.DataFrame) -> pd.Series:
    """Which rows are points that ran to the end (`status` measured, whatever their verdict;
    rows stored before `status` existed all did)."""
    if "status" not in rows:
        return pd.Series(True, index=rows.index)
    return rows["status"].eq("measured")


def left_out(rows: pd.DataFrame) -> list[str]:
    """Each row that `sound` leaves out, as "label (why)": a failed point's error, an invalid
    one's verdict reasons."""
    out = rows[~sound(rows)]
    named = []
    for _, row in out.iterrows():
        if row.get("status") == "failed":
            why = f"failed: {row.get('error') or 'no error recorded'}"
        else:
            why = str(row.get("invalid_reasons") or "INVALID")
        named.append(f"{row.get('label', row.get('point_id'))} ({why})")
    return named


def _lightest_index(group: pd.DataFrame) -> int:
    """Position of the point with the least queueing."""
    load = group["concurrency"].fillna(np.inf)
    rate = group["target_qps"].fillna(np.inf)
    return int(np.lexsort((rate.to_numpy(), load.to_numpy()))[0])


def _service_times(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The answered requests' service times (compute); per request whether a response cache
    answered it (1), the model behind one (0), or there was no cache (NaN; logs written before
    caches existed have no such column); and the overheads (see MeasuredConfig)."""
    samples, hits, overheads = [], [], []
    for _, row in rows.iterrows():
        path = Path(row["run_dir"]) / REQUESTS_DIR / f"{row['point_id']}.parquet"
        log = pd.read_parquet(path)
        answered = log[log["ok"]]
        samples.append(answered["compute_s"].to_numpy(dtype=float))
        marks = answered["cache_hit"] if "cache_hit" in answered else np.nan
        hits.append(np.broadcast_to(np.asarray(marks, dtype=float), len(answered)))
        if {"done", "sent", "queue_s"} <= set(answered.columns):
            outside = (
                answered["done"] - answered["sent"] - answered["queue_s"] - answered["compute_s"]
            )
            overheads.append(outside.to_numpy(dtype=float))
    service = np.concatenate(samples) if samples else np.zeros(0)
    hit = np.concatenate(hits) if hits else np.zeros(0)
    overhead = np.concatenate(overheads) if overheads else np.zeros(0)
    known = np.isfinite(service)
    return service[known], hit[known], np.clip(overhead[np.isfinite(overhead)], 0, None)


def _with_cache(service: np.ndarray, hit: np.ndarray) -> dict:
    """The MeasuredConfig fields of a configuration behind a cache (none without one)."""
    marked = np.isfinite(hit)
    if not marked.any():
        return {"service_s": service}
    hits, misses = service[marked & (hit == 1)], service[marked & (hit == 0)]
    ratio = float(len(hits) / marked.sum())
    return {
        "service_s": cache_mix(hits, misses, ratio) if len(misses) else hits,
        "cache_hit_ratio": ratio,
        "hit_service_s": hits,
        "miss_service_s": misses,
    }


# Open-loop points whose achieved rate is at least this share of the highest one supply the
# service times: load like the load at capacity, the load the planner predicts.
NEAR_CAPACITY = 0.5


def _service_rows(group: pd.DataFrame) -> pd.DataFrame:
    """Where the service times come from: the open-loop points nearest capacity (achieved rate
    within NEAR_CAPACITY of the highest valid one), when there are any. A request's service
    time depends on the load around it: under Poisson arrivals the worker's caches go cold
    between requests and the generator and the other workers take CPU beside it, the more so
    the higher the rate. Back-to-back samples made the planner 13-20% optimistic for MiniLM
    here; samples of every open-loop point pooled, light ones included, still leaned that way.
    Else (closed-loop scenarios only) the point with the least queueing."""
    open_loop = group[group["target_qps"].notna()]
    if open_loop.empty:
        return group.iloc[[_lightest_index(group)]]
    rate = open_loop["achieved_qps"].fillna(0.0)
    return open_loop[rate >= NEAR_CAPACITY * rate.max()]


def _measured(
    config: dict, group: pd.DataFrame, usable: pd.Series, host_cores: int
) -> MeasuredConfig:
    valid = group[usable]
    light = valid.iloc[_lightest_index(valid)]
    service_rows = _service_rows(valid)
    service, hit, overhead = _service_times(service_rows)
    workers = int(light.get("workers") or 1)
    threads = config["backend"].get("threads") or int(light.get("predictor_threads") or 0)
    if not threads:
        # The runtime's default: every core of the host, shared by the workers.
        threads = max(1, host_cores // workers)
    return MeasuredConfig(
        label=_label(config),
        config=config,
        **_with_cache(service, hit),
        overhead_s=overhead,
        drift=host_drift(group, service),
        core_sharing=_model_core_sharing(valid),
        service_points=", ".join(service_rows["label"].astype(str)),
        workers=workers,
        threads_per_worker=int(threads),
        rss_mb_per_worker=float(valid["rss_peak_mb"].max()) / workers,
        precision=str(light.get("predictor_precision") or "fp32"),
        accuracy_ok=_accuracy_ok(group),
        host_name=str(light.get("host_name", "")),
        tier=str(light.get("tier", "")),
        uses_gpu=str(light.get("predictor_provider", "")).lower().find("cuda") >= 0
        or config["backend"].get("device") == "cuda",
        left_out="; ".join(left_out(group)),
        **_artifact(valid),
    )


def host_drift(group: pd.DataFrame, service_s: np.ndarray) -> tuple[float, float]:
    """(slowest, fastest) speed at which the host served a configuration's measured open-loop
    points (any verdict: an invalid point still timed the model), relative to its service
    times: their median over each point's compute p50, bounded by 1 on each side. A shared
    host's speed drifts over minutes: MiniLM's compute p50 went from 4.7 to 5.8 ms within one
    search here, the later points missed the SLO, and the capacity measured was that of the
    slower host, which the points sized from never saw. The planner widens its band by it."""
    if not len(service_s) or "server_compute_p50_ms" not in group:
        return 1.0, 1.0
    measured = group[was_measured(group)]
    open_loop = measured[measured["target_qps"].notna()] if "target_qps" in measured else measured
    medians = pd.to_numeric(
        (open_loop if not open_loop.empty else measured)["server_compute_p50_ms"],
        errors="coerce",
    ).dropna()
    medians = medians[medians > 0]
    if medians.empty:
        return 1.0, 1.0
    sized = float(np.median(service_s)) * 1e3
    return min(1.0, sized / float(medians.max())), max(1.0, sized / float(medians.min()))


def _model_core_sharing(rows: pd.DataFrame) -> float:
    """The rows' `model_core_sharing` (their median, where runs differ); NaN without one."""
    if "model_core_sharing" not in rows:
        return float("nan")
    found = pd.to_numeric(rows["model_core_sharing"], errors="coerce").dropna()
    return float(found.median()) if not found.empty else float("nan")


def _artifact(valid: pd.DataFrame) -> dict[str, str]:
    """The one artifact the valid points served, or what is known of them."""
    if "model_sha256" not in valid:
        return {}
    served = valid[valid["model_sha256"].fillna("").astype(str) != ""]
    hashes = served["model_sha256"].unique()
    if len(hashes) == 1:
        return {
            "model_sha256": str(hashes[0]),
            "model_artifact": str(served["model_artifact"].iloc[0]),
        }
    if len(hashes) > 1:
        return {"model_artifact": f"{len(hashes)} different artifacts (model_sha256 differs)"}
    return {}


def _accuracy_ok(group: pd.DataFrame) -> bool:
    """No point of the configuration fell below the accuracy floor: its `check_accuracy` rule
    failed nowhere. Rows stored before verdicts were stored rule by rule (no `verdict_rules`)
    carry only the reasons' text, where the floor's rule wrote "accuracy below floor"."""
    by_text = group["invalid_reasons"].fillna("").astype(str).str.contains("accuracy below floor")
    if "check_accuracy" not in group.columns:
        return not by_text.any()
    by_rule = group["check_accuracy"].eq(False)
    judged_by_rule = text_column(group, "verdict_rules") != ""
    return not by_rule.where(judged_by_rule, by_text).any()


# --- hosts -------------------------------------------------------------------------------------

# The fingerprint columns the scaling model reads (and the report shows), beside `calib_*`.
_FINGERPRINT = ("host_cpu_model", "host_cores", "host_isa", "host_versions")
UNCALIBRATED = (
    "no host calibration stored with these results (measured before runs stored one per row): "
    "scaled spec-only, from the host's catalog entry or, without one, from its ISA flags"
)


@dataclass(frozen=True)
class MeasuredHost:
    """One host that measured some of the results, with the calibration stored in its rows."""

    id: str  # "<host name>/<calib_host_key>"; rows stored without one: a fingerprint hash
    name: str
    facts: dict  # host_* and calib_* columns, as bench.capacity.scaling.scale reads them
    rows: pd.DataFrame
    note: str  # why it is planned spec-only; "" when calibrated

    @property
    def calibrated(self) -> bool:
        return not self.note

    @property
    def cores(self) -> int:
        cores = self.facts.get("host_cores")
        return int(cores) if pd.notna(cores) and cores else 1


def host_ids(results: pd.DataFrame) -> pd.Series:
    """Each row's measuring host (`MeasuredHost.id`): its name and the key of the calibration
    stored with it; for rows stored without a calibration, a hash of the fingerprint instead."""
    if results.empty:
        return pd.Series([], index=results.index, dtype=object)
    names = text_column(results, "host_name")
    keys = text_column(results, "calib_host_key")
    fingerprints = results.reindex(columns=list(_FINGERPRINT)).astype(str).agg("|".join, axis=1)
    hashed = fingerprints.map(
        lambda text: "uncalibrated-" + hashlib.sha256(text.encode()).hexdigest()[:16]
    )
    return names + "/" + keys.where(keys != "", hashed)


def text_column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column as text: "" where a row has no value (None, NaN) or the frame no such column."""
    if name not in frame.columns:
        return pd.Series("", index=frame.index, dtype=object)
    return frame[name].map(lambda v: "" if v is None or v != v else str(v))  # v != v: NaN


def measured_hosts(results: pd.DataFrame) -> list[MeasuredHost]:
    """One entry per host that measured points, each with its own calibration (from its latest
    row: a host's rows share one while its calibration cache lives)."""
    rows = results[results["status"] == "measured"] if "status" in results else results
    if rows.empty:
        return []
    ids = host_ids(rows)
    hosts = []
    for host_id, group in rows.groupby(ids, sort=True):
        ordered = group.sort_values("started_at") if "started_at" in group else group
        latest = ordered.iloc[-1]
        facts = {
            k: v
            for k, v in latest.items()
            if str(k).startswith(("host_", "calib_")) and not _is_missing(v)
        }
        hosts.append(
            MeasuredHost(
                id=str(host_id),
                name=str(facts.get("host_name", "")),
                facts=facts,
                rows=group,
                note="" if facts.get("calib_host_key") else UNCALIBRATED,
            )
        )
    return hosts


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
