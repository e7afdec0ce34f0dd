"""Serving that holds up, and the harness's clients against Triton's perf_analyzer.

Run: pytest tests/benchmarks/test_interop_soak.py --benchmark-only -s
     (BENCH_SOAK_S=60 for a quick soak; the default is five minutes)

- A soak of the `http` strategy (the MLP, one worker): steady Poisson load with a share of
  malformed requests mixed in (each class tests/test_bad_input.py names, in turn); requests
  served, errors by kind, and the worker's RSS sampled over time with a least-squares slope
  after the first tenth (warm-up). Nothing may be a 5xx or a connection error, and the RSS may
  not grow past a bound after warm-up.
- perf_analyzer (tests/triton_clients.py) and the harness's own client (the runner, driven by
  the load driver, closed loop) on the same worker, HTTP and gRPC, at concurrency 1 and 4: p50
  and throughput, and the harness's figure as a share of perf_analyzer's. Each pair alternates
  within a round; the figures are medians over rounds.
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import numpy as np
import psutil
import pytest

from bench.load import Driver, LoadPoint, summarize
from bench.models import build_model
from runners import build_runner
from runners.protocol import InferRequest, encode_request, items_to_tensors
from tests.conftest import compose
from tests.test_bad_input import BAD
from tests.triton_clients import PERF_ANALYZER, needs_perf_analyzer, perf_analyzer_env

SOAK_S = float(os.environ.get("BENCH_SOAK_S", "300"))
SOAK_QPS = 50.0
MALFORMED_SHARE = 0.1
RSS_EVERY_S = 5.0
ROUNDS = 2
CONCURRENCIES = (1, 4)
POINT_S = 8.0


def _runner(strategy: str):
    return build_runner(compose(["model=mlp", f"strategy={strategy}", "progress=false"]))


async def _soak(address: str, pid: int) -> tuple[Counter, list[tuple[float, float]]]:
    good_body, good_headers = encode_request(
        InferRequest(items_to_tensors([np.ones(256, np.float32)]), binary_output=True), True
    )
    kinds: Counter = Counter()
    rss: list[tuple[float, float]] = []
    process = psutil.Process(pid)
    rng = random.Random(12)
    url = f"http://{address}/v2/models/mlp/infer"
    began = time.monotonic()

    async def send(session: aiohttp.ClientSession, malformed: int | None) -> None:
        body, headers = (good_body, good_headers) if malformed is None else (BAD[malformed][0], {})
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                kind = "served" if response.status == 200 else f"HTTP {response.status}"
                kinds[
                    kind if malformed is None else f"malformed ({BAD[malformed][1]}): {kind}"
                ] += 1
        except aiohttp.ClientError as exc:
            kinds[f"connection error: {type(exc).__name__}"] += 1

    async def sample() -> None:
        while time.monotonic() - began < SOAK_S:
            rss.append((time.monotonic() - began, process.memory_info().rss / 2**20))
            await asyncio.sleep(RSS_EVERY_S)

    async with aiohttp.ClientSession() as session:
        sampler = asyncio.create_task(sample())
        tasks, due, turn = set(), began, 0
        while due - began < SOAK_S:
            due += rng.expovariate(SOAK_QPS)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            malformed = None
            if rng.random() < MALFORMED_SHARE:
                malformed, turn = turn % len(BAD), turn + 1
            task = asyncio.create_task(send(session, malformed))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        await sampler
    return kinds, rss


def test_soak_of_the_http_strategy_with_malformed_requests(benchmark):
    figures: dict = {}

    async def main():
        runner = _runner("http")
        await runner.start()
        try:
            address = runner.addresses[0]
            pid = (await runner._worker_facts(address))["pid"]
            figures["kinds"], figures["rss"] = await _soak(address, pid)
        finally:
            await runner.stop()

    benchmark.pedantic(lambda: asyncio.run(main()), rounds=1, iterations=1)
    kinds, rss = figures["kinds"], figures["rss"]
    times, mib = np.array(rss).T
    settled = times >= 0.1 * SOAK_S
    slope = float(np.polyfit(times[settled], mib[settled], 1)[0] * 60) if settled.sum() > 2 else 0.0
    total = sum(kinds.values())
    print(
        f"\nSoak, http strategy, MLP: {SOAK_S:.0f} s at {SOAK_QPS:.0f} qps (Poisson), "
        f"{MALFORMED_SHARE:.0%} malformed; {total} requests"
    )
    for kind, count in sorted(kinds.items()):
        print(f"  {kind:72} {count:7d}")
    print(
        f"  worker RSS: {mib[0]:.1f} MiB at start, {mib[settled][0]:.1f} after warm-up, "
        f"{mib[-1]:.1f} at the end, min {mib.min():.1f} max {mib.max():.1f}; "
        f"slope after warm-up {slope:+.3f} MiB/min over {settled.sum()} samples"
    )
    benchmark.extra_info.update(
        {"requests": total, "rss_slope_mib_per_min": round(slope, 3), **dict(kinds)}
    )
    assert not [k for k in kinds if "HTTP 5" in k or "connection" in k], kinds
    assert kinds["served"] > 0
    assert mib[settled].max() - mib[settled][0] < 32, "the worker's memory grew after warm-up"


def _perf_analyzer(kind: str, address: str, concurrency: int) -> tuple[float, float]:
    """perf_analyzer's (p50 ms, inferences/s) at `concurrency`, windows of POINT_S / 2."""
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "perf.csv"
        argv = [
            str(PERF_ANALYZER), "-m", "mlp", "-u", address, "-i", kind,
            "--concurrency-range", str(concurrency),
            "--measurement-interval", str(int(POINT_S * 500)),
            "--stability-percentage", "999", "--max-trials", "3",
            "-f", str(table),
        ]  # fmt: skip
        done = subprocess.run(argv, env=perf_analyzer_env(), capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-2000:]
        [row] = list(csv.DictReader(table.open()))
    return float(row["p50 latency"]) / 1e3, float(row["Inferences/Second"])


async def _harness(runner, concurrency: int, seed: int) -> tuple[float, float, float]:
    """The harness's client's (p50 ms, requests/s, CPU ms per request), closed loop, through
    the load driver; the CPU is this process's (the driver and the client: the model is in the
    worker), as `bench` states it per point in `client_cpu_ms_per_request`."""
    bundle = build_model(runner.cfg.model)
    payloads = [bundle.samples(1, seed * 1000 + i) for i in range(64)]
    runner.begin_point()
    point = LoadPoint("concurrency", 1, 1.0, POINT_S, schedule_seed=seed, concurrency=concurrency)
    cpu = time.process_time()
    measurement = await Driver(runner, payloads).run(point)
    cpu = time.process_time() - cpu
    stats = summarize(measurement, 3, 1e-3, 1)
    assert stats["errors"] == 0
    cpu_ms = 1e3 * cpu / len(measurement.log.columns()["ok"])
    return stats["latency_p50_ms"], stats["achieved_qps"], cpu_ms


@needs_perf_analyzer
@pytest.mark.parametrize("strategy", ["http", "grpc"])
def test_harness_client_against_perf_analyzer(benchmark, strategy):
    figures = {
        (who, c): {"p50": [], "qps": []}
        for who in ("perf_analyzer", "harness")
        for c in CONCURRENCIES
    }
    client_ms = {c: [] for c in CONCURRENCIES}

    async def main():
        runner = _runner(strategy)
        await runner.start()
        try:
            for r in range(ROUNDS):
                for c in CONCURRENCIES:
                    p50, qps = await asyncio.to_thread(
                        _perf_analyzer, strategy, runner.addresses[0], c
                    )
                    figures["perf_analyzer", c]["p50"].append(p50)
                    figures["perf_analyzer", c]["qps"].append(qps)
                    p50, qps, cpu_ms = await _harness(runner, c, r)
                    figures["harness", c]["p50"].append(p50)
                    figures["harness", c]["qps"].append(qps)
                    client_ms[c].append(cpu_ms)
        finally:
            await runner.stop()

    benchmark.pedantic(lambda: asyncio.run(main()), rounds=1, iterations=1)
    print(
        f"\n{strategy}, MLP, one worker, {ROUNDS} rounds of {POINT_S:.0f} s points "
        "(median [min-max]):"
    )
    print(
        f"{'client':14} {'conc':>4} {'p50 ms':>24} {'requests/s':>26} {'p50 / pa':>9} "
        f"{'req/s / pa':>11}"
    )
    for c in CONCURRENCIES:
        pa = {k: statistics.median(v) for k, v in figures["perf_analyzer", c].items()}
        for who in ("perf_analyzer", "harness"):
            f = figures[who, c]
            p50, qps = statistics.median(f["p50"]), statistics.median(f["qps"])
            benchmark.extra_info[f"{who}_c{c}_p50_ms"] = round(p50, 3)
            benchmark.extra_info[f"{who}_c{c}_qps"] = round(qps, 1)
            print(
                f"{who:14} {c:>4} {_spread(f['p50']):>24} {_spread(f['qps']):>26} "
                f"{p50 / pa['p50']:>9.2f} {qps / pa['qps']:>11.2f}"
            )
        # The client's own share, as bench states it per point: what the harness's p50 holds
        # of its own CPU at most, against perf_analyzer's C++ client.
        cpu_ms = statistics.median(client_ms[c])
        less = statistics.median(figures["harness", c]["p50"]) - cpu_ms
        benchmark.extra_info[f"harness_c{c}_client_cpu_ms"] = round(cpu_ms, 3)
        print(
            f"{'  client CPU':14} {c:>4} {cpu_ms:8.3f} ms/request; harness p50 less it "
            f"{less:.2f} ms = {less / pa['p50']:.2f} x perf_analyzer's"
        )


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.2f} [{min(values):7.2f}-{max(values):7.2f}]"
