"""Writing results as each load point finishes, so a crash loses at most the point in flight.
Every file is written to a temporary name beside it and renamed over the old one (atomic on one
file system), so a crash while writing leaves the previous `results.parquet` whole."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS_FILE = "results.parquet"
REQUESTS_DIR = "requests"


class UnwritableRunFolder(OSError):
    """The run folder cannot hold the results; the message names the path and why."""


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class ResultsStore:
    """One run folder: `results.parquet` (a row per point) and `requests/<point_id>.parquet`
    (every request's intended, sent and done times, for re-analysis and the planner)."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RESULTS_FILE

    def check_writable(self) -> None:
        """UnwritableRunFolder unless every file a point writes can be written: a file made and
        removed in the run folder and in `requests/`, and an existing `results.parquet` opened
        for writing (as root, permission bits are no test: this tries)."""
        try:
            for folder in (self.run_dir, self.run_dir / REQUESTS_DIR):
                folder.mkdir(parents=True, exist_ok=True)
                tempfile.TemporaryFile(dir=folder).close()
            if self.path.exists():
                open(self.path, "ab").close()
        except OSError as exc:
            where = exc.filename or self.run_dir
            raise UnwritableRunFolder(
                f"cannot write results into {self.run_dir}: {where}: {exc.strerror or exc}; "
                "choose another folder (hydra.run.dir=DIR) or make this one writable"
            ) from None

    def rows(self) -> pd.DataFrame:
        return pd.read_parquet(self.path) if self.path.exists() else pd.DataFrame()

    def append(self, row: dict, requests: dict[str, np.ndarray] | None = None) -> None:
        """Write one point's row (replacing a row of the same `point_id`) and its requests."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
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
