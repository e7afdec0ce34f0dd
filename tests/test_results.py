"""The results store keeps every finished point and reads many runs back as one frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench import results
from bench.results import SCHEMA_VERSION, ResultsStore


def row(point_id: str, status: str = "measured", **kw) -> dict:
    base = {
        "schema_version": SCHEMA_VERSION,
        "point_id": point_id,
        "status": status,
        "achieved_qps": 10.0,
        "window_qps": [1.0, 2.0],
    }
    base.update(kw)
    return base


def test_rows_are_written_as_points_finish_and_replaced_by_id(tmp_path):
    store = ResultsStore(tmp_path / "run")
    store.append(row("a"), requests={"intended": np.arange(3.0), "done": np.arange(3.0) + 1})
    assert len(pd.read_parquet(tmp_path / "run" / "results.parquet")) == 1
    store.append(row("b", status="failed"))
    store.append(row("a", achieved_qps=20.0))
    frame = store.rows()
    assert sorted(frame["point_id"]) == ["a", "b"]
    assert frame.set_index("point_id").loc["a", "achieved_qps"] == 20.0
    requests = pd.read_parquet(tmp_path / "run" / "requests" / "a.parquet")
    assert list(requests["done"]) == [1.0, 2.0, 3.0]
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_load_merges_run_and_sweep_folders(tmp_path):
    ResultsStore(tmp_path / "sweep" / "0").append(row("a"))
    ResultsStore(tmp_path / "sweep" / "1").append(row("b"))
    ResultsStore(tmp_path / "other").append(row("c"))
    frame = results.load([tmp_path / "sweep", tmp_path / "other"])
    assert sorted(frame["point_id"]) == ["a", "b", "c"]
    assert frame["run_dir"].nunique() == 3


def test_load_refuses_missing_paths_and_unknown_versions(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        results.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no results.parquet"):
        results.load(tmp_path / "empty")
    ResultsStore(tmp_path / "future").append(row("a", schema_version=99))
    with pytest.raises(ValueError, match="version"):
        results.load(tmp_path / "future")
