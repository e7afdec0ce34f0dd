"""Results: one tidy row per load point, written as each finishes, read back as one DataFrame."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from bench.results.schema import CONTRACT_COLUMNS, SCHEMA_VERSION, missing_columns
from bench.results.store import RESULTS_FILE, ResultsStore
from bench.results.tier import derived_tier, tier_of


def result_files(path: str | os.PathLike) -> list[Path]:
    """`results.parquet` files of a run folder, a sweep folder (any depth) or a file itself."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such results file or folder")
    return sorted(path.rglob(RESULTS_FILE))


def load(*paths: str | os.PathLike | Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One DataFrame from any number of run or sweep folders (`load(a, b, c)` or `load([a, b])`),
    from any number of hosts; a folder named twice (or inside another named) is read once. Each
    row keeps its own host fingerprint, calibration (`calib_*`) and `tier`; a row stored before
    rows carried a tier gets the one its columns derive (`bench.results.tier`)."""
    paths = [
        p for given in paths for p in ([given] if isinstance(given, (str, os.PathLike)) else given)
    ]
    files = list(dict.fromkeys(f.resolve() for p in paths for f in result_files(p)))
    if not files:
        raise FileNotFoundError(f"no {RESULTS_FILE} under {', '.join(map(str, paths))}")
    frames = []
    for file in files:
        frame = pd.read_parquet(file)
        versions = set(frame.get("schema_version", pd.Series([None])).unique())
        if versions - {SCHEMA_VERSION}:
            raise ValueError(
                f"{file}: results schema version {sorted(versions, key=str)}, this reader "
                f"knows version {SCHEMA_VERSION}; upgrade bench to read it"
            )
        frame["run_dir"] = str(file.parent)
        frames.append(_with_tier(frame))
    return pd.concat(frames, ignore_index=True)


def _with_tier(frame: pd.DataFrame) -> pd.DataFrame:
    """`tier` on every row: as stored, or derived where the row has none."""
    stored = frame["tier"] if "tier" in frame else pd.Series(None, index=frame.index)
    missing = stored.isna() | stored.astype(str).str.strip().eq("")
    if missing.any():
        derived = [derived_tier(row) for row in frame[missing].to_dict("records")]
        stored = stored.astype(object)
        stored[missing] = derived
    frame["tier"] = stored.astype(str)
    return frame


__all__ = [
    "CONTRACT_COLUMNS",
    "SCHEMA_VERSION",
    "ResultsStore",
    "derived_tier",
    "load",
    "missing_columns",
    "result_files",
    "tier_of",
]
