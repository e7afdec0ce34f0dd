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
    service_s: np.ndarray  # per-request server-side service times, seconds
    service_points: str  # which points they came from
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


def _lightest_index(group: pd.DataFrame) -> int:
    """Position of the point with the least queueing."""
    load = group["concurrency"].fillna(np.inf)
    rate = group["target_qps"].fillna(np.inf)
    return int(np.lexsort((rate.to_numpy(), load.to_numpy()))[0])


def _service_times(rows: pd.DataFrame) -> np.ndarray:
    samples = []
    for _, row in rows.iterrows():
        path = Path(row["run_dir"]) / REQUESTS_DIR / f"{row['point_id']}.parquet"
        log = pd.read_parquet(path, columns=["compute_s", "ok"])
        samples.append(log.loc[log["ok"], "compute_s"].to_numpy())
    service = np.concatenate(samples) if samples else np.zeros(0)
    return service[np.isfinite(service)]


def _service_rows(group: pd.DataFrame) -> pd.DataFrame:
    """Where the service times come from: every open-loop point when there are any, since
    requests arriving at random find the worker idle, its caches cold, and the generator busy
    beside it (MiniLM here: 4.5 ms per request under Poisson arrivals against 3.8 ms back to
    back, which moved the predicted capacity by 20%); else the closed-loop point with the
    least queueing."""
    open_loop = group[group["target_qps"].notna()]
    return open_loop if not open_loop.empty else group.iloc[[_lightest_index(group)]]


def _measured(config: dict, group: pd.DataFrame, host_cores: int) -> MeasuredConfig:
    light = group.iloc[_lightest_index(group)]
    service_rows = _service_rows(group)
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
        service_s=_service_times(service_rows),
        service_points=", ".join(service_rows["label"].astype(str)),
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
