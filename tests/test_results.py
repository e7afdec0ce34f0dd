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


# --- nothing measured is lost to the folder ----------------------------------------------------

_WRITER = """
import sys
from bench.results import ResultsStore
store = ResultsStore(sys.argv[1])
n = len(store.rows())
while True:
    store.append({"schema_version": 1, "point_id": f"p{n}", "status": "measured", "n": n})
    n += 1
"""


def _read_whole(path) -> pd.DataFrame:
    """The file as one open handle sees it: pyarrow given a path looks its size up apart from
    opening it, so a rename between the two reads a new file at an old size."""
    with open(path, "rb") as handle:
        return pd.read_parquet(handle)


def test_a_crash_while_writing_never_corrupts_the_results(tmp_path):
    """A writer SIGKILLed at whatever moment, again and again: each time, the file reads back
    whole, with every row it held before."""
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import checkout_env

    path = tmp_path / "run" / "results.parquet"
    kept = 0
    for round_ in range(6):
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path.parent)], env=checkout_env()
        )
        deadline = time.monotonic() + 60
        # Let it write a few rows (its start-up takes a while), then kill it mid-write.
        while (not path.exists() or len(_read_whole(path)) < kept + 3) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.01)
        time.sleep(0.003 * round_)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        frame = _read_whole(path)
        assert list(frame["n"]) == list(range(len(frame))) and len(frame) >= kept + 3
        kept = len(frame)
    # A temporary file a kill left behind is not a result: the reader sees the rows kept.
    assert len(results.load(path.parent)) == kept


@pytest.mark.parametrize("blocked", ["immutable", "requests", "results"])
def test_an_unwritable_run_folder_is_refused_before_measuring(blocked, tmp_path, cache_dir):
    """As root, permission bits stop nothing: an immutable folder (chattr +i) does, so does a
    file where the requests folder should be, and a folder where results.parquet should be."""
    import shutil
    import subprocess

    run = tmp_path / "run"
    (run / "requests").mkdir(parents=True)
    if blocked == "immutable":
        (run / "requests").rmdir()
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", str(run)]).returncode != 0:
            pytest.skip("chattr +i does not work here")
    elif blocked == "requests":
        (run / "requests").rmdir()
        (run / "requests").write_text("in the way\n")
    else:
        (run / "results.parquet").mkdir()  # os.replace cannot put a file there
    try:
        # Hydra's own files (.hydra/, the job log) would meet the folder first: left out here.
        hydra_off = ["hydra.output_subdir=null", "hydra/job_logging=none"]
        proc = _bench_into(run, cache_dir, tmp_path, hydra_off if blocked == "immutable" else [])
    finally:
        if blocked == "immutable":
            subprocess.run(["chattr", "-i", str(run)], check=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"bench: error: cannot write results into {run}")
    assert "hydra.run.dir=DIR" in line


def _bench_into(run, cache_dir, cwd, extra):
    import subprocess
    import sys

    from tests.conftest import checkout_env

    return subprocess.run(
        [
            sys.executable, "-m", "bench", "model=mlp", f"cache_dir={cache_dir}", *extra,
            f"hydra.run.dir={run}",
        ],
        cwd=cwd,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
