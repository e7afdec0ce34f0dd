"""Results: one tidy row per load point, written as each finishes, read back as one DataFrame."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from bench.results.schema import CONTRACT_COLUMNS, SCHEMA_VERSION, missing_columns
from bench.results.store import RESULTS_FILE, ResultsStore


def result_files(path: str | os.PathLike) -> list[Path]:
    """`results.parquet` files of a run folder, a sweep folder (any depth) or a file itself."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such results file or folder")
    return sorted(path.rglob(RESULTS_FILE))


def load(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One DataFrame from any number of run or sweep folders, from any number of hosts."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = [f for p in paths for f in result_files(p)]
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
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


__all__ = [
    "CONTRACT_COLUMNS",
    "SCHEMA_VERSION",
    "ResultsStore",
    "load",
    "missing_columns",
    "result_files",
]
