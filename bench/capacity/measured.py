"""What the planner needs from the results, per deployable configuration: the per-worker
service times, threads and memory of a worker, its precision, and any capacity measured."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.load.slo_search import Trial, highest_passing_rate, passed
from bench.results.store import REQUESTS_DIR

# Config groups that make a configuration deployable as is; the scenario only says how it was
# measured, so points of every scenario of one configuration are pooled.
_DEPLOYABLE = ("model", "backend", "optimization", "strategy")


@dataclass(frozen=True)
class MeasuredConfig:
    label: str  # "minilm / onnxruntime / int8_dynamic / direct"
    config: dict  # the deployable part of the run config
    service_s: np.ndarray  # per-request server-side service times at low load, seconds
    service_point: str  # which point they came from
    workers: int  # workers serving in parallel on the measuring host
    threads_per_worker: int
    rss_mb_per_worker: float
    precision: str
    accuracy_ok: bool
    host_capacity_qps: float | None  # slo_search's highest passing rate on the host, if run
    host_name: str
    uses_gpu: bool


def _deployable(config_json: str) -> dict:
    config = json.loads(config_json)
    return {group: config[group] for group in _DEPLOYABLE}


def _label(config: dict) -> str:
    return " / ".join(config[g]["name"] for g in _DEPLOYABLE)


def measured_configs(results: pd.DataFrame, host_cores: int) -> list[MeasuredConfig]:
    """One entry per deployable configuration with at least one measured point."""
    rows = results[results["status"] == "measured"].copy()
    if rows.empty:
        return []
    rows["_deployable"] = rows["config"].map(lambda c: json.dumps(_deployable(c), sort_keys=True))
    found = []
    for key, group in rows.groupby("_deployable", sort=True):
        config = json.loads(key)
        found.append(_measured(config, group, host_cores))
    return found


def _lightest_point(group: pd.DataFrame) -> pd.Series:
    """The point with the least queueing: its server-side times are the bare service times."""
    load = group["concurrency"].fillna(np.inf)
    rate = group["target_qps"].fillna(np.inf)
    order = np.lexsort((rate.to_numpy(), load.to_numpy()))
    return group.iloc[order[0]]


def _service_times(row: pd.Series) -> np.ndarray:
    path = Path(row["run_dir"]) / REQUESTS_DIR / f"{row['point_id']}.parquet"
    log = pd.read_parquet(path, columns=["compute_s", "ok"])
    service = log.loc[log["ok"], "compute_s"].to_numpy()
    return service[np.isfinite(service)]


def _measured(config: dict, group: pd.DataFrame, host_cores: int) -> MeasuredConfig:
    light = _lightest_point(group)
    workers = int(light.get("workers") or 1)
    threads = config["backend"].get("threads") or int(light.get("predictor_threads") or 0)
    if not threads:
        # The runtime's default: every core of the host, shared by the workers.
        threads = max(1, host_cores // workers)
    search = group[group["scenario"] == "slo_search"]
    host_capacity = None
    if not search.empty:
        sc = json.loads(search.iloc[0]["config"])["scenario"]
        server = search[search["target_qps"].notna()]
        trials = [
            Trial(
                r["target_qps"],
                r[f"latency_{sc['slo_percentile']}_ms"],
                passed(r, sc["slo_ms"], sc["slo_percentile"], sc["max_late_fraction"]),
            )
            for r in server.to_dict("records")
        ]
        host_capacity = highest_passing_rate(trials)
    reasons = group["invalid_reasons"].fillna("").astype(str)
    return MeasuredConfig(
        label=_label(config),
        config=config,
        service_s=_service_times(light),
        service_point=str(light["label"]),
        workers=workers,
        threads_per_worker=int(threads),
        rss_mb_per_worker=float(group["rss_peak_mb"].max()) / workers,
        precision=str(light.get("predictor_precision") or "fp32"),
        accuracy_ok=not reasons.str.contains("accuracy below floor").any(),
        host_capacity_qps=host_capacity,
        host_name=str(light.get("host_name", "")),
        uses_gpu=str(light.get("predictor_provider", "")).lower().find("cuda") >= 0
        or config["backend"].get("device") == "cuda",
    )
