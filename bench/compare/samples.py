"""Reading the stored runs a comparison needs: the rows of each folder, and one point's
per-request samples from `requests/<point_id>.parquet`. The only module of the comparison
that opens files; it reads results only, never measures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bench.compare.stats import PointSamples, Tokens
from bench.results import load
from bench.results.store import REQUESTS_DIR

# The TTFT and TPOT SLOs (ms) goodput is judged against; None: that one not set.
Slos = tuple[float | None, float | None]


def runs(path: str | os.PathLike) -> pd.DataFrame:
    """Every row of a run or sweep folder (`bench.results.load`): FileNotFoundError naming the
    folder where it holds no results."""
    return load(path)


# A generative point's request log holds these too (`bench.load.log`).
TOKEN_COLUMNS = ["first_token", "last_token", "output_tokens"]


def point_samples(row: pd.Series, slos: Slos = (None, None)) -> PointSamples | None:
    """A measured point's samples, or None where its request log is not stored; a generative
    point's with its token samples, its goodput judged against `slos` (TTFT, TPOT, ms)."""
    path = Path(row["run_dir"]) / REQUESTS_DIR / f"{row['point_id']}.parquet"
    if row.get("status") != "measured" or not path.is_file():
        return None
    columns = ["intended", "done", "ok"]
    stored = pq.read_schema(path).names
    generative = all(c in stored for c in TOKEN_COLUMNS)
    log = pd.read_parquet(path, columns=columns + (TOKEN_COLUMNS if generative else []))
    intended, done, ok = (log[c].to_numpy() for c in columns)
    start, end = _window(row, intended)
    # As the point's own statistics: requests meant for the window, whenever they finished;
    # completions counted inside it.
    good = ok & (intended >= start) & (intended <= end)
    finished = good & (done >= start) & (done <= end)
    return PointSamples(
        latency_s=done[good] - intended[good],
        intended_s=intended[good],
        done_s=done[finished],
        window_start_s=start,
        window_end_s=end,
        tokens=_tokens(log, good, finished, slos) if generative else None,
    )


def _tokens(log: pd.DataFrame, good: np.ndarray, finished: np.ndarray, slos: Slos) -> Tokens:
    """TTFT and TPOT as `bench.load.generation_stats` defines them (TPOT: the mean gap after
    the first token), of the requests answered in the window; tokens and whether each met the
    SLOs, of those completed in it."""
    intended = log["intended"].to_numpy(dtype=float)
    first, last = (log[c].to_numpy(dtype=float) for c in ("first_token", "last_token"))
    output = log["output_tokens"].to_numpy(dtype=float)
    ttft = first - intended
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(output > 1, (last - first) / (output - 1), np.nan)
    slo_ttft_ms, slo_tpot_ms = slos
    meets = None
    if slo_ttft_ms is not None or slo_tpot_ms is not None:
        meets = np.isfinite(ttft)
        if slo_ttft_ms is not None:
            meets &= ttft * 1e3 <= slo_ttft_ms
        if slo_tpot_ms is not None:
            meets &= ~(tpot * 1e3 > slo_tpot_ms)
    return Tokens(
        ttft_s=ttft[good],
        tpot_s=tpot[good],
        done_tokens=np.nan_to_num(output[finished]),
        done_meets=meets[finished] if meets is not None else None,
    )


def slos_of(row: pd.Series) -> Slos:
    """The TTFT and TPOT SLOs (ms) a row's scenario set, None for one not set."""
    found = []
    for name in ("scenario.slo_ttft_ms", "scenario.slo_tpot_ms"):
        value = pd.to_numeric(row.get(name), errors="coerce")
        found.append(float(value) if pd.notna(value) else None)
    return found[0], found[1]


def _window(row: pd.Series, intended: np.ndarray) -> tuple[float, float]:
    """The measured window: stored with the row; for rows written before it was, the first
    intended send plus the point's warm-up, for its duration."""
    start, end = row.get("window_start_s"), row.get("window_end_s")
    if start is not None and end is not None and np.isfinite(start) and np.isfinite(end):
        return float(start), float(end)
    point = json.loads(row["point"])
    start = float(intended.min()) + float(point.get("warmup_s") or 0.0)
    return start, start + float(row["window_s"])


def rss_samples(row: pd.Series) -> np.ndarray:
    """The RSS samples (MB) of the point's window; none for rows written before they were."""
    text = row.get("rss_samples_mb")
    return np.asarray(json.loads(text) if isinstance(text, str) else [], dtype=float)
