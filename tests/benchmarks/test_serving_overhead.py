"""What serving over the wire costs, and what dynamic batching buys, on the real MiniLM.

Run: pytest tests/benchmarks/test_serving_overhead.py --benchmark-only -s

- The load client's own cost per request, against trivial endpoints (no model, fixed reply).
- HTTP and gRPC against `direct` at a moderate Poisson rate, p50 and p99.
- Dynamic batching against batch-1 serving over HTTP at saturation (closed loop, 32
  outstanding): throughput and p99.

MiniLM on ONNX Runtime with one intra-op thread, so on a 2-core host the server has a core and
the client the other. Strategies alternate within each round, so a noisy neighbour slows all of
a round alike; each figure is the median over rounds, the spread is printed beside it.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time

import aiohttp
import numpy as np

from bench.load import Driver, LoadPoint, summarize
from bench.models import build_model
from runners import build_runner
from runners.processes import free_port_run
from tests.conftest import compose

ROUNDS = 3
RATE_QPS = 40.0
MINILM = ["model=minilm", "backend=onnxruntime", "backend.threads=1", "progress=false"]


def _measure(overrides: list[str], point: LoadPoint) -> tuple[dict, dict]:
    """One load point through a freshly started runner: the statistics, and the runner's
    facts read after the point (batch sizes formed included)."""
    cfg = compose([*MINILM, *overrides])

    async def main():
        bundle = build_model(cfg.model)
        payloads = [
            bundle.samples(point.batch_size, point.payload_seed * 1000 + i) for i in range(64)
        ]
        runner = build_runner(cfg)
        await runner.start()
        try:
            runner.begin_point()
            measurement = await Driver(runner, payloads).run(point)
            return measurement, runner.facts.as_row()
        finally:
            await runner.stop()

    measurement, facts = asyncio.run(main())
    stats = summarize(measurement, 3, 1e-3, point.batch_size)
    cols = measurement.log.columns()
    window = (cols["intended"] >= measurement.window_start) & cols["ok"]
    stats["server_compute_p50_ms"] = float(np.median(cols["compute_s"][window]) * 1e3)
    stats["server_queue_p50_ms"] = float(np.median(cols["queue_s"][window]) * 1e3)
    return stats, facts


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} [{min(values):6.2f}-{max(values):6.2f}]"


def test_http_and_grpc_overhead_over_direct(benchmark):
    strategies = ["direct", "http", "grpc"]
    figures = {s: {"p50": [], "p99": [], "compute": [], "qps": []} for s in strategies}

    def rounds():
        for r in range(ROUNDS):
            point = LoadPoint("server", 1, 2.0, 12.0, schedule_seed=r, target_qps=RATE_QPS)
            for strategy in strategies:
                stats, _ = _measure([f"strategy={strategy}"], point)
                assert stats["errors"] == 0
                figures[strategy]["p50"].append(stats["latency_p50_ms"])
                figures[strategy]["p99"].append(stats["latency_p99_ms"])
                figures[strategy]["compute"].append(stats["server_compute_p50_ms"])
                figures[strategy]["qps"].append(stats["achieved_qps"])

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    base = {k: statistics.median(figures["direct"][k]) for k in ("p50", "p99")}
    print(
        f"\nMiniLM, ONNX Runtime 1 thread, server scenario at {RATE_QPS:g} qps, "
        f"{ROUNDS} rounds (median [min-max] ms):"
    )
    print(f"{'strategy':8} {'p50':>22} {'p99':>22} {'compute p50':>22} {'+p50':>7} {'+p99':>7}")
    for strategy, f in figures.items():
        p50, p99 = statistics.median(f["p50"]), statistics.median(f["p99"])
        benchmark.extra_info[f"{strategy}_p50_ms"] = round(p50, 3)
        benchmark.extra_info[f"{strategy}_p99_ms"] = round(p99, 3)
        print(
            f"{strategy:8} {_spread(f['p50'])} {_spread(f['p99'])} {_spread(f['compute'])} "
            f"{p50 - base['p50']:7.2f} {p99 - base['p99']:7.2f}"
        )


def test_dynamic_batching_against_batch_one_at_saturation(benchmark):
    variants = {
        "batch-1": ["strategy.batching.max_batch_size=1"],
        "batch<=16, 5 ms": [
            "strategy.batching.max_batch_size=16",
            "strategy.batching.max_queue_delay_ms=5",
        ],
    }
    figures = {name: {"qps": [], "p50": [], "p99": []} for name in variants}
    formed: dict[str, str] = {}

    def rounds():
        for r in range(ROUNDS):
            point = LoadPoint("concurrency", 1, 1.5, 8.0, schedule_seed=r, concurrency=32)
            for name, overrides in variants.items():
                stats, facts = _measure(["strategy=http", *overrides], point)
                assert stats["errors"] == 0
                figures[name]["qps"].append(stats["achieved_qps"])
                figures[name]["p50"].append(stats["latency_p50_ms"])
                figures[name]["p99"].append(stats["latency_p99_ms"])
                formed[name] = facts["batch_sizes_formed"]

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    print(
        f"\nMiniLM over HTTP, 32 outstanding, ONNX Runtime 1 thread, {ROUNDS} rounds "
        "(median [min-max]):"
    )
    print(f"{'serving':16} {'requests/s':>24} {'p50 ms':>22} {'p99 ms':>22}")
    for name, f in figures.items():
        benchmark.extra_info[f"{name}_qps"] = round(statistics.median(f["qps"]), 1)
        benchmark.extra_info[f"{name}_p99_ms"] = round(statistics.median(f["p99"]), 2)
        print(f"{name:16} {_spread(f['qps']):>24} {_spread(f['p50'])} {_spread(f['p99'])}")
    for name, sizes in formed.items():
        print(f"batch sizes formed, {name} (last round, items: calls): {sizes}")


# --- the client alone ------------------------------------------------------------------------


async def _hammer(call, concurrency: int, duration_s: float) -> dict:
    """`concurrency` loops calling `call()` for `duration_s`: rate, p50, and this process's
    CPU time per request (the client's own cost: the server runs elsewhere)."""
    latencies: list[float] = []
    end = time.perf_counter() + duration_s

    async def loop():
        while (began := time.perf_counter()) < end:
            await call()
            latencies.append(time.perf_counter() - began)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "rate": len(latencies) / wall,
        "p50_ms": float(np.median(latencies) * 1e3),
        "cpu_us": cpu / len(latencies) * 1e6,
    }


def test_client_overhead_against_trivial_endpoints(benchmark):
    http_port = free_port_run("127.0.0.1", 2)
    http_target, grpc_target = f"127.0.0.1:{http_port}", f"127.0.0.1:{http_port + 1}"
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.benchmarks.trivial_servers:app"]
            + ["--port", str(http_port), "--lifespan", "off", "--log-level", "warning"]
        ),
        subprocess.Popen(
            [sys.executable, "-m", "tests.benchmarks.trivial_servers", str(http_port + 1)]
        ),
    ]
    table: list[tuple] = []

    async def main():
        # The runners' own request path (encode the items, send, decode the v2 reply), with the
        # trivial servers standing in for their workers; and bare aiohttp posting a fixed body
        # of about the same size, for comparison.
        http = build_runner(compose(["model=mlp", "strategy=http"]))
        grpc_runner = build_runner(compose(["model=mlp", "strategy=grpc"]))
        sample = [np.zeros(256, np.float32)]
        body = b"x" * 1100
        await http._open()
        await grpc_runner._open()
        session = aiohttp.ClientSession()

        async def bare() -> None:
            url = f"http://{http_target}/v2/models/mlp/infer"
            async with session.post(url, data=body) as response:
                await response.read()

        clients = {
            "aiohttp, bare POST": bare,
            "http runner": lambda: http._call(http_target, sample),
            "grpc runner": lambda: grpc_runner._call(grpc_target, sample),
        }
        try:
            for target, ready in ((http_target, http._ready), (grpc_target, grpc_runner._ready)):
                deadline = time.monotonic() + 30
                while not await ready(target):
                    assert time.monotonic() < deadline, f"trivial server at {target} not up"
                    await asyncio.sleep(0.05)
            for concurrency in (1, 32):
                for name, call in clients.items():
                    await _hammer(call, concurrency, 0.5)  # connections and caches warm
                    table.append((name, concurrency, await _hammer(call, concurrency, 3.0)))
        finally:
            await session.close()
            await http._close()
            await grpc_runner._close()

    try:
        benchmark.pedantic(lambda: asyncio.run(main()), rounds=1, iterations=1)
    finally:
        for server in servers:
            server.terminate()
            server.wait()
    print("\nload client alone, against trivial endpoints (server in its own process):")
    print(
        f"{'client':20} {'outstanding':>11} {'requests/s':>11} {'p50 ms':>8} "
        f"{'client CPU us/req':>18}"
    )
    for name, concurrency, f in table:
        print(
            f"{name:20} {concurrency:11d} {f['rate']:11.0f} {f['p50_ms']:8.3f} {f['cpu_us']:18.1f}"
        )
        benchmark.extra_info[f"{name} c{concurrency} cpu_us"] = round(f["cpu_us"], 1)
