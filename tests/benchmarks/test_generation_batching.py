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

The optimizations that apply to generation (`optimization=bf16`, `optimization=int8_dynamic`,
`backend=torch_compile`) against fp32 eager, continuous batching, the same clients: output
tokens/s and TPOT p50, beside the drift of the next-token distribution from fp32's, measured
in this process on the model each worker decodes with (`language_model()`): the same prompts
prefilled into its cache and fed fp32's greedy tokens one step at a time (teacher forcing),
so every step compares the two distributions over the same text. Drift columns: the mean and
the largest KL divergence KL(fp32 || variant) in nats, and the share of steps whose most
likely token is fp32's.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp
import numpy as np
import torch

from bench.backends import build_predictor
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
        "tpot_p50_ms": float(np.percentile(tpot, 50) * 1e3),
        "tpot_p99_ms": float(np.percentile(tpot, 99) * 1e3),
        "requests": len(inside),
    }


async def _interleaved(runners: dict, prompts: list[list[int]], rounds: int, figures: dict) -> None:
    """Saturate each runner in turn, `rounds` times, adding each round's figures to its lists:
    the variants see the same host conditions in alternation."""
    for _ in range(rounds):
        for name, runner in runners.items():
            measured = await _saturate(f"http://{runner.addresses[0]}/v1/completions", prompts)
            for key in figures[name]:
                figures[name][key].append(measured[key])


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
        await _interleaved({mode: runners[mode] for mode in MODES}, prompts, ROUNDS, figures)
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


VARIANTS = {
    "fp32": [],
    "bf16": ["optimization=bf16"],
    "int8_dynamic": ["optimization=int8_dynamic"],
    "torch_compile": ["backend=torch_compile"],
}
OPT_ROUNDS = 2
DRIFT_PROMPTS = 8


def _variant(overrides: list[str], cache_dir: str):
    return compose(
        [
            "model=causal_lm",
            "strategy=http",
            "backend.threads=1",
            "progress=false",
            f"strategy.generation.max_sequences={CLIENTS}",
            "strategy.start_timeout_s=900",
            f"cache_dir={cache_dir}",
            *overrides,
        ]
    )


@torch.inference_mode()
def _forced_logits(lm, prompts: torch.Tensor, forced: torch.Tensor) -> torch.Tensor:
    """Next-token logits (rows, steps + 1, vocabulary) after each prompt and after each of
    `forced`'s tokens fed in turn through the cache, as the engine decodes."""
    rows, width = prompts.shape
    out = lm(input_ids=prompts, attention_mask=torch.ones_like(prompts), use_cache=True)
    logits = [out.logits[:, -1].float()]
    for i in range(forced.shape[1]):
        mask = torch.ones((rows, width + i + 1), dtype=torch.long)
        positions = torch.full((rows, 1), width + i, dtype=torch.long)
        out = lm(
            input_ids=forced[:, i : i + 1],
            attention_mask=mask,
            position_ids=positions,
            cache=out.cache,
            use_cache=True,
        )
        logits.append(out.logits[:, -1].float())
    return torch.stack(logits, dim=1)


def _drift(cache_dir: str, prompts: list[list[int]]) -> dict[str, dict[str, float]]:
    """Per variant: KL(fp32 || variant) mean and max (nats), top-1 agreement, over every step
    of DRIFT_PROMPTS prompts decoded OUT_TOKENS steps on fp32's greedy tokens."""
    torch.set_num_threads(1)
    ids = torch.tensor(prompts[:DRIFT_PROMPTS], dtype=torch.long)
    found, reference, forced = {}, None, None
    for name, overrides in VARIANTS.items():
        cfg = _variant(overrides, cache_dir)
        predictor = build_predictor(
            build_model(cfg.model), cfg.backend, cfg.optimization, cfg.cache_dir
        )
        lm = predictor.language_model()
        if reference is None:  # fp32 first: its greedy tokens are everyone's text
            steps = []
            with torch.inference_mode():
                out = lm(input_ids=ids, use_cache=True)
                for _ in range(OUT_TOKENS - 1):
                    steps.append(out.logits[:, -1].argmax(dim=-1, keepdim=True))
                    out = lm(input_ids=steps[-1], cache=out.cache, use_cache=True)
            forced = torch.cat(steps, dim=1)
        logits = _forced_logits(lm, ids, forced)
        if reference is None:
            reference = logits
        p_log = torch.log_softmax(reference, dim=-1)
        q_log = torch.log_softmax(logits, dim=-1)
        kl = (p_log.exp() * (p_log - q_log)).sum(dim=-1)
        found[name] = {
            "kl_mean": float(kl.mean()),
            "kl_max": float(kl.max()),
            "top1": float((reference.argmax(-1) == logits.argmax(-1)).float().mean()),
        }
    return found


def test_optimizations_on_the_generation_path(benchmark, cache_dir):
    runners = {}
    figures = {v: {"tokens_per_s": [], "tpot_p50_ms": []} for v in VARIANTS}
    started = {}

    async def main():
        try:
            for name, overrides in VARIANTS.items():
                began = time.perf_counter()
                runners[name] = build_runner(_variant(overrides, cache_dir))
                await runners[name].start()
                started[name] = time.perf_counter() - began
            prompts = _prompts(build_model(runners["fp32"].cfg.model).tokenizer(), 64)
            await _interleaved(
                {name: runners[name] for name in VARIANTS}, prompts, OPT_ROUNDS, figures
            )
            return prompts
        finally:
            for runner in runners.values():
                await runner.stop()

    prompts = benchmark.pedantic(lambda: asyncio.run(main()), rounds=1, iterations=1)
    drift = _drift(cache_dir, prompts)
    print(f"\n{CLIENTS} streaming clients, in {IN_TOKENS} / out {OUT_TOKENS} tokens, continuous "
          f"batching, 1 thread, {OPT_ROUNDS} rounds of {WINDOW_S:g} s; median [min-max]; drift "
          f"over {DRIFT_PROMPTS} prompts x {OUT_TOKENS} steps against fp32")  # fmt: skip
    print(f"{'variant':>14} {'output tok/s':>24} {'TPOT p50 ms':>24} {'KL mean':>9} "
          f"{'KL max':>9} {'top-1':>6} {'start s':>8}")  # fmt: skip
    for name in VARIANTS:
        f, d = figures[name], drift[name]
        speed = f"{_spread(f['tokens_per_s']):>24} {_spread(f['tpot_p50_ms']):>24}"
        print(f"{name:>14} {speed} {d['kl_mean']:9.2e} {d['kl_max']:9.2e} {d['top1']:6.3f} "
              f"{started[name]:8.1f}")  # fmt: skip
    fp32 = statistics.median(figures["fp32"]["tokens_per_s"])
    for name in VARIANTS:
        ratio = statistics.median(figures[name]["tokens_per_s"]) / fp32
        benchmark.extra_info[f"{name}_tokens_per_s_vs_fp32"] = round(ratio, 3)
        benchmark.extra_info[f"{name}_kl_mean"] = drift[name]["kl_mean"]
    assert drift["fp32"]["kl_max"] == 0.0 and drift["fp32"]["top1"] == 1.0
