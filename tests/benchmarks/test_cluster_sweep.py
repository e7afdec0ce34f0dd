"""A sweep of 8 load points (4 configurations of 2 points) run three ways, interleaved, two
rounds each: on this machine alone (Hydra's own launcher, one process), and through a 3-node
loopback Ray cluster (a head and two measuring nodes; tests/ray_cluster.py), first with every
configuration on one node (`tier=a`: the same serial work, plus Ray's scheduling, a process per
configuration and the gathering), then on both nodes at once. Printed: the wall time of each,
the time per point outside the points' own warm-up and measured windows, and how far each
point's p50 and throughput through Ray are from the same point measured locally.

Run: pytest tests/benchmarks/test_cluster_sweep.py --benchmark-only -s
(On a 2-core host the two nodes share the cores, so their points disturb each other: on
separate machines they would not.)
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
SWEEP = ["model=busy", "model.service_ms=1,2,3,5", "scenario.levels=[1,2]"]
SWEEP += [f"scenario.warmup_s={WARMUP_S}", f"scenario.duration_s={DURATION_S}"]
SWEEP += ["accuracy_samples=0", "progress=false", "plan.enabled=false", "report=false"]
POINTS = 8
# variant -> (extra overrides, nodes measuring at once)
VARIANTS = {"local": ([], 1), "ray, 1 node": (["tier=a"], 1), "ray, 2 nodes": ([], 2)}
KEY = ["model.service_ms", "label"]
FIGURES = ["latency_p50_ms", "achieved_qps"]


@pytest.mark.skipif(bool(RAY), reason=RAY)
def test_a_sweep_locally_and_across_a_ray_cluster(benchmark, tmp_path, cache_dir):
    cluster = RayCluster(["a", "b"])
    walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
    frames: dict[str, list[pd.DataFrame]] = {v: [] for v in VARIANTS}

    def sweep(variant: str, round_: int) -> None:
        extra, _ = VARIANTS[variant]
        folder = tmp_path / f"{variant.replace(' ', '').replace(',', '-')}{round_}"
        command = [sys.executable, "-m", "bench", "-m", *SWEEP, *extra]
        command += [f"cache_dir={cache_dir}", f"hydra.sweep.dir={folder}"]
        if variant != "local":
            command = ["nsenter", f"--net=/proc/{cluster.proc.pid}/ns/net", *command]
            command += ["hydra/launcher=ray", f"hydra.launcher.address={cluster.address}"]
        began = time.perf_counter()
        proc = subprocess.run(command, env=checkout_env(), capture_output=True, text=True)
        walls[variant].append(time.perf_counter() - began)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        frames[variant].append(results.load(folder))

    def rounds() -> None:
        for round_ in range(2):
            for variant in VARIANTS:
                sweep(variant, round_)

    try:
        benchmark.pedantic(rounds, rounds=1, iterations=1)
    finally:
        cluster.close()
    measured = POINTS * (WARMUP_S + DURATION_S)
    local = pd.concat(frames["local"]).groupby(KEY)[FIGURES].median()
    print()
    for variant, (_, nodes) in VARIANTS.items():
        wall = statistics.median(walls[variant])
        outside = (wall - measured / nodes) / POINTS
        print(
            f"{variant:>12}: wall {wall:.1f} s (rounds "
            f"{', '.join(f'{w:.1f}' for w in walls[variant])}); {outside:.2f} s per point "
            f"outside the points' {WARMUP_S + DURATION_S:.1f} s windows ({nodes} at once)"
        )
        benchmark.extra_info[f"{variant} wall_s"] = walls[variant]
        for frame in frames[variant]:
            assert set(frame.columns) == set(frames["local"][0].columns) and len(frame) == POINTS
        if variant == "local":
            continue
        ratio = pd.concat(frames[variant]).groupby(KEY)[FIGURES].median() / local
        print(
            f"{'':>12}  p50 / local: median {ratio['latency_p50_ms'].median():.3f} (range "
            f"{ratio['latency_p50_ms'].min():.3f}-{ratio['latency_p50_ms'].max():.3f}); "
            f"throughput / local: median {ratio['achieved_qps'].median():.3f} (range "
            f"{ratio['achieved_qps'].min():.3f}-{ratio['achieved_qps'].max():.3f})"
        )
        benchmark.extra_info[f"{variant} p50_ratio"] = ratio["latency_p50_ms"].tolist()
    overhead = (statistics.median(walls["ray, 1 node"]) - statistics.median(walls["local"])) / 4
    print(f"Ray's cost per configuration, serially (1 node - local) / 4: {overhead:.2f} s")
    for variant in VARIANTS:
        spread = (
            pd.concat(frames[variant])
            .groupby(KEY)["latency_p50_ms"]
            .agg(lambda s: (s.max() - s.min()) / s.median())
            .median()
        )
        print(f"round-to-round spread of a point's p50 (median), {variant}: {spread:.1%}")
