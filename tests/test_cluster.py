"""Sweeps across a real Ray cluster: a head and two worker nodes on this machine, each worker
offering its own tier, everything on 127.0.0.1 inside a network namespace of the cluster's own
(`tests/ray_cluster.py`); `python -m bench -m ... hydra/launcher=ray` driven from inside it, as
a user would from a machine of the cluster."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from bench import results
from bench.cluster.ray_sweep import FAILURE_FILE
from tests.conftest import ROOT, checkout_env

try:
    import ray  # noqa: F401

    RAY = ""
except ImportError:
    RAY = "Ray is not installed (pip install '.[cluster]', which .ci/run installs)"

pytestmark = pytest.mark.skipif(bool(RAY), reason=RAY)

# Two configurations per tier, two short load points each, on a model of known service time.
SWEEP = [
    "tier=a,b",
    "model=busy",
    "model.service_ms=1,2",
    "scenario.levels=[1,2]",
    "scenario.warmup_s=0.2",
    "scenario.duration_s=0.5",
    "accuracy_samples=0",
    "progress=false",
    "plan.enabled=false",
]
# Columns that differ between any two runs, wherever they ran.
_PER_RUN = {"run_dir"}


class RayCluster:
    """The cluster's helper process (in its own network namespace) and its nodes."""

    def __init__(self, tiers: list[str]) -> None:
        # Ray's session files and the nodes' scratch folders in a folder removed at the end (a
        # short path: Ray's Unix sockets live under it).
        self.tmp = tempfile.mkdtemp(prefix="raytest-")
        self.proc = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable]
            + [str(ROOT / "tests" / "ray_cluster.py"), *tiers],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**checkout_env(), "TMPDIR": self.tmp},
        )
        started = json.loads(self.proc.stdout.readline() or "{}")
        assert started, "the Ray cluster did not start (see its output above)"
        self.address = started["address"]
        self.nodes = started["nodes"]

    def add(self, tier: str) -> dict:
        self.proc.stdin.write(f"add {tier}\n")
        self.proc.stdin.flush()
        node = json.loads(self.proc.stdout.readline())
        self.nodes.append(node)
        return node

    def run(self, *command: str, **kwargs) -> subprocess.Popen:
        """A process inside the cluster's network namespace."""
        return subprocess.Popen(
            ["nsenter", f"--net=/proc/{self.proc.pid}/ns/net", *command],
            env=checkout_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,
        )

    def bench(self, *args: str) -> subprocess.Popen:
        return self.run(
            sys.executable, "-m", "bench", "-m", "hydra/launcher=ray",
            f"hydra.launcher.address={self.address}", *args,
        )  # fmt: skip

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    cluster = RayCluster(["a", "b"])
    yield cluster
    cluster.close()


def _finished(proc: subprocess.Popen, timeout: float = 240) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    return out, err


def _gathered(sweep: Path) -> dict[str, bytes]:
    return {str(p.parent.name): p.read_bytes() for p in sweep.glob(f"*/{results.RESULTS_FILE}")}


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory, cache_dir) -> pd.DataFrame:
    """The same sweep on this machine alone, with Hydra's own launcher."""
    sweep = tmp_path_factory.mktemp("local")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "-m", *SWEEP, f"cache_dir={cache_dir}", "report=false"]
        + [f"hydra.sweep.dir={sweep}"],
        env=checkout_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=sweep,
    )
    _finished(proc)
    return results.load(sweep)


@pytest.fixture(scope="module")
def lost_node(cluster, tmp_path_factory, cache_dir):
    """The sweep on the cluster, node b's raylet killed once the first configuration is
    gathered: (sweep folder, what was gathered when it was killed, the driver's output)."""
    sweep = tmp_path_factory.mktemp("ray")
    driver = cluster.bench(
        *SWEEP, f"cache_dir={cache_dir}", "report=false", f"hydra.sweep.dir={sweep}"
    )
    while not (before := _gathered(sweep)):
        assert driver.poll() is None, driver.communicate()
        time.sleep(0.05)
    node_b = next(n for n in cluster.nodes if n["tier"] == "b")
    os.kill(node_b["raylet_pid"], signal.SIGKILL)
    out, _ = _finished(driver)
    return sweep, before, out


def test_a_node_lost_mid_sweep_loses_nothing_gathered_and_the_sweep_goes_on(lost_node):
    sweep, before, out = lost_node
    after = _gathered(sweep)
    # Everything gathered before the node died is there, untouched.
    assert {k: after.get(k) for k in before} == before
    failed = sorted(p.parent for p in sweep.glob(f"*/{FAILURE_FILE}"))
    assert failed, out  # node b had a configuration in flight or waiting when it died
    for folder in failed:
        said = (folder / FAILURE_FILE).read_text()
        assert "tier=b" in said and "tier:b" in said and "FAILED configuration" in out
    rows = results.load(sweep)
    # The sweep went on: tier a measured both its configurations.
    assert (rows[rows["tier"] == "a"].groupby("model.service_ms").size() == 2).all()
    assert len(rows[rows["tier"] == "a"]) == 4 and (rows["status"] == "measured").all()


@pytest.fixture(scope="module")
def rerun(cluster, lost_node, cache_dir):
    """A new node of tier b joins; the same sweep is run again, its report on."""
    sweep, _, _ = lost_node
    runs_before = {
        k: set(pd.read_parquet(sweep / k / results.RESULTS_FILE)["run_id"])
        for k in _gathered(sweep)
    }
    node = cluster.add("b")
    out, _ = _finished(cluster.bench(*SWEEP, f"cache_dir={cache_dir}", f"hydra.sweep.dir={sweep}"))
    return sweep, runs_before, node, out


def test_a_rerun_skips_what_was_gathered_and_measures_the_rest_on_the_new_node(rerun):
    sweep, runs_before, node, out = rerun
    assert not list(sweep.glob(f"*/{FAILURE_FILE}"))
    for job, runs in runs_before.items():
        # Gathered before: not measured again.
        assert set(pd.read_parquet(sweep / job / results.RESULTS_FILE)["run_id"]) == runs
    rows = results.load(sweep)
    remeasured = rows[~rows["run_dir"].map(lambda d: Path(d).name).isin(list(runs_before))]
    assert len(remeasured) > 0
    assert (remeasured["node"] == f"{socket.gethostname()}/{node['node_id'][:12]}").all()
    # The sweep's report ran at the end, over every configuration, wherever it ran.
    assert f"sweep report: {sweep / 'report.html'}" in out


def test_the_cluster_sweep_matches_the_local_one_and_names_node_and_tier(
    cluster, rerun, local_sweep
):
    sweep, _, _, _ = rerun
    rows = results.load(sweep)
    assert set(rows.columns) - _PER_RUN == set(local_sweep.columns) - _PER_RUN
    assert len(rows) == len(local_sweep) == 8
    configs = ["tier", "model.service_ms", "label", "status"]
    key = lambda frame: sorted(map(tuple, frame[configs].astype(str).values))  # noqa: E731
    assert key(rows) == key(local_sweep)
    tier_of_node = {f"{socket.gethostname()}/{n['node_id'][:12]}": n["tier"] for n in cluster.nodes}
    assert (rows["node"].map(tier_of_node) == rows["tier"]).all()
    assert (local_sweep["node"] == socket.gethostname()).all()


def test_a_tier_no_node_offers_is_refused_naming_the_tiers(cluster, tmp_path):
    proc = cluster.bench("model=busy", "tier=c", f"hydra.sweep.dir={tmp_path}")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in err
    assert "bench: error: tier=c: no node of the Ray cluster offers the resource 'tier:c'" in err
    assert "its tiers: a, b" in err
