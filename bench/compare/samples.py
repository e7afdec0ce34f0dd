"""Reading the stored runs a comparison needs: the rows of each folder, and one point's
per-request samples from `requests/<point_id>.parquet`. The only module of the comparison
that opens files; it reads results only, never measures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from bench.compare.stats import PointSamples
from bench.results import load
from bench.results.store import REQUESTS_DIR


def runs(path: str | os.PathLike) -> pd.DataFrame:
    """Every row of a run or sweep folder (`bench.results.load`): FileNotFoundError naming the
    folder where it holds no results."""
    return load(path)


def point_samples(row: pd.Series) -> PointSamples | None:
    """A measured point's samples, or None where its request log is not stored."""
    path = Path(row["run_dir"]) / REQUESTS_DIR / f"{row['point_id']}.parquet"
    if row.get("status") != "measured" or not path.is_file():
        return None
    log = pd.read_parquet(path, columns=["intended", "done", "ok"])
    intended, done, ok = (log[c].to_numpy() for c in ("intended", "done", "ok"))
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
    )


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
