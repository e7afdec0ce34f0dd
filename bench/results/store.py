"""Writing results as each load point finishes, so a crash loses at most the point in flight."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS_FILE = "results.parquet"
REQUESTS_DIR = "requests"


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


class ResultsStore:
    """One run folder: `results.parquet` (a row per point) and `requests/<point_id>.parquet`
    (every request's intended, sent and done times, for re-analysis and the planner)."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RESULTS_FILE
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def rows(self) -> pd.DataFrame:
        return pd.read_parquet(self.path) if self.path.exists() else pd.DataFrame()

    def append(self, row: dict, requests: dict[str, np.ndarray] | None = None) -> None:
        if requests is not None:
            folder = self.run_dir / REQUESTS_DIR
            folder.mkdir(exist_ok=True)
            _atomic_parquet(pd.DataFrame(requests), folder / f"{row['point_id']}.parquet")
        frame = self.rows()
        if not frame.empty:
            frame = frame[frame["point_id"] != row["point_id"]]
        new = pd.DataFrame([row])
        frame = new if frame.empty else pd.concat([frame, new], ignore_index=True)
        _atomic_parquet(frame, self.path)
