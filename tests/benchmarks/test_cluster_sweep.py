"""A sweep of 8 load points run on this machine alone and through a 3-node loopback Ray cluster
(a head and two measuring nodes, tiers a and b; tests/ray_cluster.py), interleaved, two rounds:
the wall time of each, the time per point spent outside the points' own warm-up and measured
windows (scheduling, process starts, model builds, gathering), and how far each point's p50 and
throughput on the cluster are from the same point measured locally.

Run: pytest tests/benchmarks/test_cluster_sweep.py --benchmark-only -s
(On a 2-core host the two nodes share the cores: their points measure side by side.)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pandas as pd
import pytest

from bench import results
from tests.conftest import checkout_env
from tests.test_cluster import RAY, RayCluster

WARMUP_S, DURATION_S = 0.5, 2.0
SWEEP = ["tier=a,b", "model=busy", "model.service_ms=2,5", "scenario.levels=[1,2]"]
SWEEP += [f"scenario.warmup_s={WARMUP_S}", f"scenario.duration_s={DURATION_S}"]
SWEEP += ["accuracy_samples=0", "progress=false", "plan.enabled=false", "report=false"]
POINTS = 8  # 2 tiers x 2 service times x 2 concurrency levels
NODES = 2
KEY = ["tier", "model.service_ms", "label"]


def _timed(command: list[str], cwd) -> float:
    began = time.perf_counter()
    proc = subprocess.run(command, env=checkout_env(), capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return time.perf_counter() - began


@pytest.mark.skipif(bool(RAY), reason=RAY)
def test_a_sweep_locally_and_across_a_ray_cluster(benchmark, tmp_path, cache_dir):
    cluster = RayCluster(["a", "b"])
    walls: dict[str, list[float]] = {"local": [], "ray": []}
    frames: dict[str, list[pd.DataFrame]] = {"local": [], "ray": []}

    def sweep(where: str, round_: int) -> None:
        folder = tmp_path / f"{where}{round_}"
        args = ["-m", *SWEEP, f"cache_dir={cache_dir}", f"hydra.sweep.dir={folder}"]
        if where == "local":
            command = [sys.executable, "-m", "bench", *args]
        else:
            command = ["nsenter", f"--net=/proc/{cluster.proc.pid}/ns/net", sys.executable]
            command += ["-m", "bench", *args, "hydra/launcher=ray"]
            command += [f"hydra.launcher.address={cluster.address}"]
        walls[where].append(_timed(command, tmp_path))
        frames[where].append(results.load(folder))

    def rounds() -> None:
        for round_ in range(2):
            sweep("local", round_)
            sweep("ray", round_)

    try:
        benchmark.pedantic(rounds, rounds=1, iterations=1)
    finally:
        cluster.close()
    measured = POINTS * (WARMUP_S + DURATION_S)
    print()
    for where, nodes in (("local", 1), ("ray", NODES)):
        wall = statistics.median(walls[where])
        overhead = (wall - measured / nodes) / POINTS
        print(
            f"{where:>5}: wall {wall:.1f} s (rounds {', '.join(f'{w:.1f}' for w in walls[where])}),"
            f" {POINTS} points of {WARMUP_S + DURATION_S:.1f} s on {nodes} node(s): "
            f"{overhead:.2f} s per point outside the points' windows"
        )
        benchmark.extra_info[f"{where}_wall_s"] = walls[where]
        benchmark.extra_info[f"{where}_overhead_s_per_point"] = overhead
    local = pd.concat(frames["local"]).groupby(KEY)[["latency_p50_ms", "achieved_qps"]].median()
    ray = pd.concat(frames["ray"]).groupby(KEY)[["latency_p50_ms", "achieved_qps"]].median()
    assert list(local.index) == list(ray.index) and len(local) == POINTS
    for frame in frames["ray"]:
        assert set(frame.columns) == set(frames["local"][0].columns)
    ratio = ray / local
    table = local.join(ray, lsuffix="_local", rsuffix="_ray").join(ratio.add_suffix("_ratio"))
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    spread = {
        where: pd.concat(frames[where])
        .groupby(KEY)["latency_p50_ms"]
        .agg(lambda s: (s.max() - s.min()) / s.median())
        .median()
        for where in frames
    }
    print(
        f"p50 cluster/local: median ratio {ratio['latency_p50_ms'].median():.3f}, range "
        f"{ratio['latency_p50_ms'].min():.3f}-{ratio['latency_p50_ms'].max():.3f}; "
        f"round-to-round spread of a point's p50 (median): local {spread['local']:.1%}, "
        f"ray {spread['ray']:.1%}"
    )
    benchmark.extra_info["p50_ratio"] = ratio["latency_p50_ms"].tolist()
