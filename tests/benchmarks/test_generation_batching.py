"""Continuous batching against static batching and one sequence at a time, at saturation, on
the built-in causal LM (about 22M parameters, seeded random weights) behind the HTTP worker.

Run: pytest tests/benchmarks/test_generation_batching.py --benchmark-only -s

CLIENTS closed-loop streaming clients (OpenAI `/v1/completions`, `stream: true`), each request
a prompt of IN_TOKENS token ids from the corpus and OUT_TOKENS tokens out (`ignore_eos`,
greedy), read with a small aiohttp SSE client here. Per mode: output tokens/s (tokens of the
requests finished inside the window, over the window), TTFT p99 (send to first token chunk),
TPOT p99 (mean gap after the first token, per request). One worker per mode, started once, with
one intra-op thread (on a 2-core host the server has a core, the clients the other); the modes
alternate within each round, so a noisy neighbour slows a whole round alike; each figure is the
median over rounds, the spread beside it.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp
import numpy as np

from bench.models import build_model
from bench.models.text_corpus import SENTENCES
from runners import build_runner
from tests.conftest import compose

ROUNDS = 3
CLIENTS = 16
IN_TOKENS = 64
OUT_TOKENS = 32
WARMUP_S = 2.0
WINDOW_S = 8.0
MODES = ("continuous", "static", "none")


def _prompts(tokenizer, count: int) -> list[list[int]]:
    """Prompts of exactly IN_TOKENS ids: corpus sentences in a seeded order, cut."""
    rng = np.random.default_rng(7)
    prompts = []
    for _ in range(count):
        text = " ".join(SENTENCES[i] for i in rng.permutation(len(SENTENCES))[:12])
        prompts.append(tokenizer(text)["input_ids"][:IN_TOKENS])
    return prompts


async def _one(session, url: str, prompt: list[int]) -> tuple[float, list[float], int]:
    """Send one streamed request: (sent, arrival time of each token chunk, usage tokens)."""
    body = {"model": "causal_lm", "prompt": prompt, "max_tokens": OUT_TOKENS, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    body.update(temperature=0, ignore_eos=True)
    sent = time.perf_counter()
    arrivals, used = [], 0
    async with session.post(url, json=body) as response:
        assert response.status == 200
        async for line in response.content:
            if not line.startswith(b"data: {"):
                continue
            now = time.perf_counter()
            if b'"usage":{' in line:
                used = int(line.split(b'"completion_tokens":')[1].split(b",")[0])
            else:
                arrivals.append(now)
    return sent, arrivals, used


async def _saturate(url: str, prompts: list[list[int]]) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        start, end = began + WARMUP_S, began + WARMUP_S + WINDOW_S
        done: list[tuple[float, list[float], int]] = []

        async def client(index: int) -> None:
            turn = index
            while time.perf_counter() < end:
                done.append(await _one(session, url, prompts[turn % len(prompts)]))
                turn += CLIENTS

        await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    inside = [(s, a, u) for s, a, u in done if s >= start and a[-1] <= end]
    assert inside and all(len(a) == OUT_TOKENS == u for _, a, u in inside)
    ttft = [a[0] - s for s, a, _ in inside]
    tpot = [(a[-1] - a[0]) / (len(a) - 1) for _, a, _ in inside]
    tokens = sum(len(a) for s, a, _ in done if start <= a[-1] <= end)
    return {
        "tokens_per_s": tokens / WINDOW_S,
        "ttft_p99_ms": float(np.percentile(ttft, 99) * 1e3),
        "tpot_p99_ms": float(np.percentile(tpot, 99) * 1e3),
        "requests": len(inside),
    }


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} [{min(values):7.1f}-{max(values):7.1f}]"


def test_continuous_batching_against_static_and_none(benchmark):
    runners = {}
    figures = {m: {"tokens_per_s": [], "ttft_p99_ms": [], "tpot_p99_ms": []} for m in MODES}

    async def start():
        for mode in MODES:
            cfg = compose(
                [
                    "model=causal_lm",
                    "strategy=http",
                    "backend.threads=1",
                    "progress=false",
                    f"strategy.generation.batching={mode}",
                    f"strategy.generation.max_sequences={CLIENTS}",
                ]  # fmt: skip
            )
            runners[mode] = build_runner(cfg)
            await runners[mode].start()

    async def rounds():
        tokenizer = build_model(runners["none"].cfg.model).tokenizer()
        prompts = _prompts(tokenizer, 64)
        for _ in range(ROUNDS):
            for mode in MODES:
                url = f"http://{runners[mode].addresses[0]}/v1/completions"
                measured = await _saturate(url, prompts)
                for key in figures[mode]:
                    figures[mode][key].append(measured[key])
        facts = {}
        async with aiohttp.ClientSession() as session:
            for mode in MODES:
                url = f"http://{runners[mode].addresses[0]}/v2/bench/worker"
                async with session.get(url) as response:
                    facts[mode] = (await response.json())["generation"]
        return facts

    async def main():
        try:
            await start()
            return await rounds()
        finally:
            for runner in runners.values():
                await runner.stop()

    facts = benchmark.pedantic(lambda: asyncio.run(main()), rounds=1, iterations=1)
    print(f"\n{CLIENTS} streaming clients, in {IN_TOKENS} / out {OUT_TOKENS} tokens, "
          f"{ROUNDS} rounds of {WINDOW_S:g} s; median [min-max]")  # fmt: skip
    print(f"{'batching':>11} {'output tok/s':>24} {'TTFT p99 ms':>24} {'TPOT p99 ms':>24}"
          f" {'mean rows/step':>15}")  # fmt: skip
    for mode in MODES:
        rows = facts[mode]["step_rows"]
        mean_rows = sum(int(k) * v for k, v in rows.items()) / max(1, sum(rows.values()))
        f = figures[mode]
        print(f"{mode:>11} {_spread(f['tokens_per_s']):>24} {_spread(f['ttft_p99_ms']):>24} "
              f"{_spread(f['tpot_p99_ms']):>24} {mean_rows:15.1f}")  # fmt: skip
    median = {m: statistics.median(figures[m]["tokens_per_s"]) for m in MODES}
    print(
        f"continuous / static: {median['continuous'] / median['static']:.2f}x, "
        f"continuous / none: {median['continuous'] / median['none']:.2f}x output tokens/s"
    )
    assert facts["continuous"]["joined_running_batch"] > 0
    assert facts["static"]["joined_running_batch"] == 0
    assert facts["none"]["max_step_rows"] == 1
