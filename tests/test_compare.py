"""`bench-compare`: the comparison on synthetic stored runs (fast, exact), and the command on
two real small runs of `bench`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.cli import compare_main
from bench.compare import compare
from bench.compare.gate import GateConfig, OnInvalid, gate_config
from bench.compare.markdown import markdown
from bench.results import ResultsStore
from bench.validation import ConfigError
from tests.conftest import LENIENT, checkout_env

WINDOW = (1.0, 11.0)  # the measured window, seconds on the (synthetic) driver's clock


def _requests(service_ms: float, seed: int, spread: float, concurrency: int = 1) -> dict:
    """A closed loop at `concurrency` over [0, 12] s, service times lognormal around
    `service_ms`: each request is meant to be sent when its slot's previous one is done."""
    rng = np.random.default_rng(seed)
    intended, done = [], []
    for _ in range(concurrency):
        t = 0.0
        while t < WINDOW[1] + 1.0:
            took = service_ms / 1e3 * concurrency * rng.lognormal(0.0, spread)
            intended.append(t)
            done.append(t + took)
            t += took
    order = np.argsort(intended)
    n = len(order)
    return {
        "intended": np.asarray(intended)[order],
        "done": np.asarray(done)[order],
        "ok": np.ones(n, dtype=bool),
    }


def _row(label: str, config: dict, point: dict, requests: dict, **extra) -> dict:
    start, end = WINDOW
    finished = (requests["done"] >= start) & (requests["done"] <= end)
    key = json.dumps({"config": config, "point": point}, sort_keys=True)
    return {
        "schema_version": 1,
        "run_id": "synthetic",
        "point_id": str(abs(hash(key)) % 10**12),
        "point": json.dumps(point, sort_keys=True),
        "config": json.dumps(config, sort_keys=True),
        "status": "measured",
        "error": "",
        "label": label,
        "model": config["model"]["name"],
        "backend": "torch",
        "optimization": "none",
        "strategy": "direct",
        "scenario.slo_ms": config["scenario"].get("slo_ms"),
        "scenario.slo_percentile": "p99",
        "valid": True,
        "invalid_reasons": "",
        "window_start_s": start,
        "window_end_s": end,
        "window_s": end - start,
        "achieved_qps": finished.sum() / (end - start),
        "rss_samples_mb": json.dumps([400.0, 401.0, 400.5]),
        "accuracy_top1_agreement": 1.0,
        **extra,
    }


def stored_run(
    folder: Path,
    service_ms: float = 5.0,
    seed: int = 0,
    levels=(1,),
    spread: float = 0.2,
    slo_ms: float | None = None,
    **extra,
) -> Path:
    """A run folder as `bench` writes one: a row per concurrency level and its request log."""
    store = ResultsStore(folder)
    config = {
        "model": {"name": "busy", "service_ms": service_ms},
        "scenario": {"name": "concurrency", "slo_ms": slo_ms},
    }
    for level in levels:
        requests = _requests(service_ms, seed * 100 + level, spread, level)
        point = {"concurrency": level, "duration_s": 10.0, "warmup_s": 1.0}
        store.append(_row(f"concurrency {level}", config, point, requests, **extra), requests)
    return folder


def stored_generation(
    folder: Path, ttft_ms: float, tpot_ms: float, seed: int, slo_tpot_ms: float | None = None
) -> Path:
    """A generative run folder: one closed-loop stream at a time, each request's first token
    `ttft_ms` and then 7 more `tpot_ms` apart (lognormal spread), as its request log stores
    them (`first_token`, `last_token`, `output_tokens`)."""
    rng = np.random.default_rng(seed)
    intended, first, last = [], [], []
    t = 0.0
    while t < WINDOW[1] + 1.0:
        start = t + ttft_ms / 1e3 * rng.lognormal(0.0, 0.1)
        end = start + 7 * tpot_ms / 1e3 * rng.lognormal(0.0, 0.1)
        intended.append(t), first.append(start), last.append(end)
        t = end
    n = len(intended)
    requests = {
        "intended": np.asarray(intended),
        "done": np.asarray(last),
        "ok": np.ones(n, dtype=bool),
        "first_token": np.asarray(first),
        "last_token": np.asarray(last),
        "output_tokens": np.full(n, 8.0),
    }
    config = {
        "model": {"name": "causal_lm", "hidden_size": 64},
        "scenario": {"name": "concurrency", "slo_tpot_ms": slo_tpot_ms},
    }
    point = {"concurrency": 1, "duration_s": 10.0, "warmup_s": 1.0}
    row = _row("concurrency 1", config, point, requests, **{"scenario.slo_tpot_ms": slo_tpot_ms})
    ResultsStore(folder).append(row, requests)
    return folder


def test_a_slower_decode_is_gated_on_tpot_tokens_per_second_and_goodput(tmp_path):
    # The same first token; each later one 50% slower. Goodput at a TPOT SLO of 12 ms: the
    # baseline's 10 ms tokens meet it, the candidate's 15 ms ones do not (but for the spread).
    base = stored_generation(tmp_path / "a", 50.0, 10.0, seed=1, slo_tpot_ms=12.0)
    again = stored_generation(tmp_path / "b", 50.0, 10.0, seed=2, slo_tpot_ms=12.0)
    slow = stored_generation(tmp_path / "c", 50.0, 15.0, seed=3, slo_tpot_ms=12.0)
    rerun = compare(base, again, GateConfig())
    verdicts = _verdicts(rerun)
    for metric in ("TTFT p99", "TPOT p99", "output tokens/s"):
        assert verdicts[metric] in ("same", "unsure"), (metric, verdicts)
    assert rerun.passed
    comparison = compare(base, slow, GateConfig())
    changes = {c.metric: c for c in comparison.points[0].changes}
    assert str(changes["TTFT p99"].verdict) in ("same", "unsure")
    assert str(changes["TPOT p99"].verdict) == "slower" and changes["TPOT p99"].fails
    tokens = changes["output tokens/s"]
    assert str(tokens.verdict) == "slower" and tokens.unit == "tok/s"
    # 8 tokens a request, one request at a time: about 8 / (50 + 7 x 10 ms) tokens a second.
    assert tokens.baseline == pytest.approx(8 / 0.120, rel=0.1)
    goodput = changes["goodput"]
    assert goodput.candidate < 0.1 * goodput.baseline and goodput.fails
    failures = " ".join(comparison.failures)
    assert "TPOT p99 worse by" in failures and "goodput worse by" in failures
    text = markdown(comparison)
    assert "| concurrency 1 | TPOT p99 |" in text and "tok/s" in text
    # Goodput is gated only where the candidate's scenario set an SLO to count it against.
    unset = stored_generation(tmp_path / "d", 50.0, 15.0, seed=3)
    assert "goodput" not in _verdicts(compare(base, unset, GateConfig()))


def _verdicts(comparison) -> dict[str, str]:
    return {c.metric: str(c.verdict) for c in comparison.points[0].changes}


def test_two_runs_of_the_same_configuration_come_out_same_and_pass(tmp_path):
    base = stored_run(tmp_path / "a", seed=1)
    again = stored_run(tmp_path / "b", seed=2)
    comparison = compare(base, again, GateConfig())
    verdicts = _verdicts(comparison)
    assert comparison.changed == {}
    assert verdicts["p50 latency"] == "same"
    assert verdicts["throughput"] == "same"
    assert verdicts["peak memory"] == "same"
    assert verdicts["top-1 agreement"] == "same"
    assert "slower" not in verdicts.values() and "faster" not in verdicts.values()
    assert comparison.passed
    text = markdown(comparison)
    assert "**Gate: passed.**" in text and "an A/A comparison" in text


def test_a_slowdown_beyond_the_noise_is_slower_fails_the_gate_and_leads_the_table(tmp_path):
    base = stored_run(tmp_path / "a", seed=1)
    slow = stored_run(tmp_path / "b", service_ms=6.0, seed=2)  # 20% slower
    comparison = compare(base, slow, GateConfig())
    verdicts = _verdicts(comparison)
    assert verdicts["p50 latency"] == verdicts["throughput"] == "slower"
    assert comparison.changed == {"model.service_ms": (5.0, 6.0)}
    assert not comparison.passed
    assert any("p50 latency worse by" in f and "10% allowed" in f for f in comparison.failures)
    rows = [line for line in markdown(comparison).splitlines() if line.startswith("| ")]
    assert "**FAIL**" in rows[1]  # the first row under the header: the worst regression
    assert "`model.service_ms` 5.0 → 6.0" in markdown(comparison)
    # The same runs, the same verdicts: the bootstrap is seeded.
    assert markdown(compare(base, slow, GateConfig())) == markdown(comparison)
    # Faster the other way round.
    assert _verdicts(compare(slow, base, GateConfig()))["p50 latency"] == "faster"


def test_a_change_the_samples_cannot_resolve_is_unsure_and_does_not_fail(tmp_path):
    base = stored_run(tmp_path / "a", service_ms=40.0, seed=1, spread=1.0)
    candidate = stored_run(tmp_path / "b", service_ms=44.0, seed=2, spread=1.0)
    comparison = compare(base, candidate, GateConfig())
    assert _verdicts(comparison)["p99 latency"] == "unsure"
    assert comparison.passed


def test_points_pair_by_configuration_and_load_and_the_unmatched_are_named(tmp_path):
    base = stored_run(tmp_path / "a", seed=1, levels=(1, 2))
    candidate = stored_run(tmp_path / "b", service_ms=5.5, seed=2, levels=(1, 4))
    comparison = compare(base, candidate, GateConfig())
    assert [p.label for p in comparison.points] == ["concurrency 1"]
    assert comparison.only_baseline == ["concurrency 2"]
    assert comparison.only_candidate == ["concurrency 4"]
    text = markdown(comparison)
    assert "only in the baseline: concurrency 2" in text
    assert "only in the candidate: concurrency 4" in text


def test_an_invalid_point_is_said_and_fails_the_gate_unless_skipped(tmp_path):
    base = stored_run(tmp_path / "a", seed=1)
    reason = "too short: 2.0 s and 730 requests, minimum 5 s and 100"
    bad = stored_run(tmp_path / "b", seed=2, valid=False, invalid_reasons=reason)
    failing = compare(base, bad, GateConfig())
    assert not failing.passed
    assert failing.failures == [
        "concurrency 1: INVALID in the candidate, so the gate cannot vouch for it "
        "(gate.invalid=skip leaves it out)"
    ]
    assert f"INVALID in the candidate: {reason}" in markdown(failing)
    skipped = compare(base, bad, GateConfig(invalid=OnInvalid.skip))
    assert skipped.passed
    text = markdown(skipped)
    assert "concurrency 1 (INVALID)" in text and "skipped (INVALID)" in text


def test_accuracy_below_its_floor_and_memory_growth_fail_the_gate(tmp_path):
    base = stored_run(tmp_path / "a", seed=1)
    grown = json.dumps([520.0, 521.0])
    worse = stored_run(tmp_path / "b", seed=2, accuracy_top1_agreement=0.9, rss_samples_mb=grown)
    comparison = compare(base, worse, GateConfig(min_accuracy=0.95))
    verdicts = {c.metric: c.word for c in comparison.points[0].changes}
    assert verdicts["top-1 agreement"] == "worse"
    assert verdicts["peak memory"] == "larger"
    failures = " ".join(comparison.failures)
    assert "top-1 agreement 0.9000 below gate.min_accuracy=0.95" in failures
    assert "peak memory worse by +29.7% to +30.2%" in failures


def test_throughput_at_the_slo_comes_from_each_sides_points_that_meet_it(tmp_path):
    # One server, so concurrency 4 queues: p99 about 25 ms at 5 ms a request, 40 ms at 8 ms. Under
    # 30 ms, the baseline's best is concurrency 4, the candidate's concurrency 1.
    base = stored_run(tmp_path / "a", seed=1, levels=(1, 4), slo_ms=30.0, spread=0.1)
    slow = stored_run(
        tmp_path / "b", service_ms=8.0, seed=2, levels=(1, 4), slo_ms=30.0, spread=0.1
    )
    comparison = compare(base, slow, GateConfig())
    [(_, at_slo)] = comparison.slo
    assert at_slo.metric == "throughput at p99 <= 30 ms"
    assert 190 < at_slo.baseline < 210 and 120 < at_slo.candidate < 130
    assert str(at_slo.verdict) == "slower" and at_slo.fails


@pytest.mark.parametrize(
    "setting, said",
    [
        ("gate.max_p99_regression=ten", "gate.max_p99_regression: expected a percentage like 10%"),
        ("gate.max_p99_latency=10%", "gate.max_p99_latency: no such setting; the settings are"),
        ("gate.invalid=maybe", "gate.invalid: accepted values are fail, skip; got 'maybe'"),
        ("gate.confidence=2", "gate.confidence: must be in [0.5, 1), got 2.0"),
        ("gate.max_throughput_regression=150%", "gate.max_throughput_regression: must be < 100%"),
        ("max_p99_regression=10%", "expected gate.FIELD=VALUE"),
    ],
)
def test_a_bad_gate_setting_is_named_in_one_line_with_exit_2(tmp_path, capsys, setting, said):
    run = stored_run(tmp_path / "a")
    assert compare_main([str(run), str(run), setting]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench-compare: error: ") and said in err and err.count("\n") == 1


def test_settings_parse_as_percentages_fractions_and_null():
    gate = gate_config(["gate.max_p99_regression=5%", "gate.min_accuracy=0.99"])
    assert gate.max_p99_regression == pytest.approx(0.05) and gate.min_accuracy == 0.99
    assert gate_config(["gate.max_memory_regression=null"]).max_memory_regression is None
    with pytest.raises(ConfigError, match="gate.resamples: expected a whole number"):
        gate_config(["gate.resamples=many"])


def test_folders_without_results_or_without_a_common_point_exit_2(tmp_path, capsys):
    run = stored_run(tmp_path / "a", levels=(1,))
    other = stored_run(tmp_path / "b", levels=(2,))
    assert compare_main([str(run), str(tmp_path / "nowhere")]) == 2
    assert "no such results file or folder" in capsys.readouterr().err
    assert compare_main([str(run), str(other)]) == 2
    said = capsys.readouterr().err
    assert "the baseline measured concurrency 1; the candidate concurrency 2" in said


# --- the command, on real runs -----------------------------------------------------------------

RUN = [
    "model=busy",
    "scenario.levels=[1]",
    "scenario.warmup_s=0.5",
    "scenario.duration_s=2",
    "accuracy_samples=4",
    "progress=false",
    "report=false",
    "plan.enabled=false",
    *LENIENT,
]


def _command() -> list[str]:
    """`bench-compare` where the install put it beside this Python, else its module."""
    script = Path(sys.executable).with_name("bench-compare")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bench.compare"]


def test_the_command_passes_a_rerun_and_fails_a_slower_model_on_real_runs(tmp_path, cache_dir):
    def run(name: str, service_ms: float) -> Path:
        folder = tmp_path / name
        args = [*RUN, f"model.service_ms={service_ms}", f"cache_dir={cache_dir}"]
        subprocess.run(
            [sys.executable, "-m", "bench", *args, f"hydra.run.dir={folder}"],
            env=checkout_env(), check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        return folder

    base, again, slow = run("base", 3.0), run("again", 3.0), run("slow", 9.0)
    # Thresholds wide enough that a noisy shared host never trips them on a rerun, and the
    # candidate three times slower always does.
    gate = ["gate.max_p50_regression=50%", "gate.max_p99_regression=null",
            "gate.max_throughput_regression=40%", "gate.max_memory_regression=null"]  # fmt: skip

    def bench_compare(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*_command(), *args], env=checkout_env(), capture_output=True, text=True, timeout=120
        )

    rerun = bench_compare(str(base), str(again), *gate, "--markdown", str(tmp_path / "aa.md"))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "gate: passed" in rerun.stdout
    summary = (tmp_path / "aa.md").read_text()
    assert "**Gate: passed.**" in summary and "| concurrency 1 | p50 latency |" in summary
    assert "an A/A comparison" in summary

    slower = bench_compare(str(base), str(slow), *gate)
    assert slower.returncode == 1, slower.stdout + slower.stderr
    assert "**Gate: FAILED**" in slower.stdout
    assert "`model.service_ms` 3.0 → 9.0" in slower.stdout
    table = [line for line in slower.stdout.splitlines() if line.startswith("| concurrency 1")]
    assert "| p50 latency |" in table[0] and "| **slower** | **FAIL** (50%) |" in table[0]
    shutil.rmtree(tmp_path, ignore_errors=True)
