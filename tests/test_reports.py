"""The report stage: a results folder in, one self-contained, readable HTML file out."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bench.results
from bench.cli import report_main
from bench.load.stats import histogram, percentiles_ms
from bench.results import ResultsStore
from bench.results.histogram import PERCENTILE_METHOD, encode
from reports import build_report, figures
from tests.conftest import checkout_env

SLOW_REASON = "unstable: across the last 3 windows throughput differs by 23% (tolerance 10%)"
UNSTABLE = {"stability": SLOW_REASON}
FAILED_ERROR = "RuntimeError: worker exited with code 137 (out of memory)"
# The verdict as a row stores it, rule by rule: (check, the rule's text as judged).
RULES = (
    (
        "duration",
        "Long enough: at least 5 s measured and 100 requests completed in the window "
        "(after a 2 s warm-up).",
    ),
    (
        "stability",
        "Stable: across the last 3 windows, throughput spreads by at most 10% "
        "((max - min) / median).",
    ),
    (
        "generator",
        "The generator kept pace: at most 1% of requests dispatched more than 1 ms after "
        "their intended time.",
    ),
    (
        "connections",
        "The load was offered as scheduled: at most 1% of requests waited more than 1 ms for "
        "a free client connection.",
    ),
    ("errors", "No request failed."),
    ("accuracy", "No accuracy floor was set, so none is judged."),
    ("slo", "Latency SLO: p99 at or below 50 ms."),
)
SCENARIO = {
    "name": "concurrency",
    "warmup_s": 2.0,
    "duration_s": 10.0,
    "min_duration_s": 5.0,
    "min_requests": 100,
    "stability_windows": 3,
    "stability_tolerance": 0.1,
    "late_send_ms": 1.0,
    "max_late_fraction": 0.01,
    "slo_ms": 50.0,
    "slo_percentile": "p99",
}


def _config(optimization: str) -> str:
    return json.dumps(
        {
            "model": {"name": "mlp"},
            "backend": {"name": "torch"},
            "optimization": {"name": optimization},
            "strategy": {"name": "direct"},
            "scenario": SCENARIO,
        }
    )


def _base(optimization: str, concurrency: int) -> dict:
    return {
        "schema_version": 1,
        "run_id": f"run-{optimization}",
        "point_id": f"{optimization}-{concurrency}",
        "label": f"concurrency {concurrency}",
        "model": "mlp",
        "backend": "torch",
        "optimization": optimization,
        "strategy": "direct",
        "scenario": "concurrency",
        "batch_size": 1,
        "concurrency": concurrency,
        "target_qps": np.nan,
        "host_cpu_model": "Test CPU @ 3.0GHz",
        "host_cores": 8,
        "host_isa": "avx2 fma",
        "host_mem_gb": 31.3,
        "host_gpu": "none",
        "host_versions": json.dumps({"torch": "2.13.0", "numpy": "1.26.4"}),
        "host_name": "bench-host-1",
        "git_rev": "abc1234",
        "tag": None,
        "config": _config(optimization),
    }


def verdict(failed: dict[str, str]) -> dict:
    """A point's verdict columns, rule by rule: `failed` maps each failed check to its reason;
    accuracy is not judged (no floor), every other rule passed."""
    rules, checks = [], {}
    for check, rule in RULES:
        if check == "accuracy":
            outcome, checks[f"check_{check}"] = "not judged", None
        else:
            outcome = "failed" if check in failed else "passed"
            checks[f"check_{check}"] = check not in failed
        rules.append(
            {"check": check, "rule": rule, "outcome": outcome, "reason": failed.get(check, "")}
        )
    return {
        **checks,
        "verdict_rules": json.dumps(rules),
        "invalid_codes": json.dumps(list(failed)),
        "invalid_reasons": "; ".join(failed.values()),
        "valid": not failed,
    }


def measured_row(
    optimization: str,
    concurrency: int,
    median_ms: float,
    seed: int,
    failed: dict[str, str] | None = None,
) -> dict:
    """A measured point whose statistics come from real (lognormal) sample latencies; its
    verdict failed the checks in `failed` (check -> reason)."""
    failed = failed or {}
    rng = np.random.default_rng(seed)
    latencies_s = rng.lognormal(np.log(median_ms / 1000), 0.35, size=2000)
    sent_s = latencies_s * 0.95
    lat_hist, sent_hist = histogram(latencies_s), histogram(sent_s)
    window = 10.0
    qps = concurrency / (median_ms / 1000)  # Little's law: a closed loop's throughput
    windows = list(qps * rng.uniform(0.97, 1.03, size=5))
    if "stability" in failed:
        windows[-1] *= 1.23
    return {
        **_base(optimization, concurrency),
        "status": "measured",
        "error": None,
        "achieved_qps": qps,
        "requests": len(latencies_s),
        "completed": len(latencies_s),
        "errors": 0,
        "window_s": window,
        **percentiles_ms(lat_hist, "latency"),
        **percentiles_ms(sent_hist, "sent_latency"),
        "latency_hist": encode(lat_hist),
        "sent_latency_hist": encode(sent_hist),
        "late_send_fraction": 0.002,
        "window_qps": windows,
        **verdict(failed),
        "recommendation": (
            "run longer (scenario.duration_s) or on a quieter host"
            if failed
            else "none: the point is valid"
        ),
        "cpu_util_pct": 180.0 + concurrency,
        "rss_peak_mb": 412.5,
        "accuracy_max_abs_diff": 3.2e-4 if optimization != "none" else 0.0,
        "accuracy_cosine_min": 0.99991,
    }


def failed_row(optimization: str, concurrency: int) -> dict:
    return {
        **_base(optimization, concurrency),
        "status": "failed",
        "error": FAILED_ERROR,
        "valid": False,
        "invalid_reasons": "",
        "latency_hist": None,
        "window_qps": None,
    }


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run: two valid points, a faster but unstable one, and one that failed."""
    store = ResultsStore(tmp_path_factory.mktemp("results") / "run")
    store.append(measured_row("none", 1, median_ms=5.0, seed=1))
    store.append(measured_row("none", 2, median_ms=2.0, seed=2))
    store.append(measured_row("none", 4, median_ms=1.0, seed=3, failed=UNSTABLE))
    store.append(failed_row("none", 8))
    return store.run_dir


@pytest.fixture(scope="module")
def page(run_dir: Path) -> str:
    """The report's HTML source."""
    return build_report(run_dir).read_text(encoding="utf-8")


def _text(page: str) -> str:
    """What a reader sees: the page with tags dropped and entities decoded."""
    body = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def _headline(page: str) -> str:
    return html.unescape(re.search(r'<p class="headline[^"]*">(.*?)</p>', page, re.S).group(1))


def _resources(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page)


def test_report_answers_first_and_shows_every_point(run_dir: Path, page: str) -> None:
    assert (run_dir / "report.html").read_text(encoding="utf-8") == page
    headline = _headline(page)
    # concurrency 4 is faster but invalid: the headline must name the fastest *valid* point.
    assert "concurrency 2" in headline and "concurrency 4" not in headline
    assert "mlp / torch / none / direct / concurrency" in headline
    assert "1,000.0 requests/s" in headline
    text = _text(page)
    for label in ("concurrency 1", "concurrency 2", "concurrency 4", "concurrency 8"):
        assert label in text
    assert SLOW_REASON in text
    assert FAILED_ERROR in text
    assert PERCENTILE_METHOD in text
    assert "Latency SLO: p99 at or below 50 ms." in text  # the rules as the rows store them
    assert "torch 2.13.0" in text and "Test CPU @ 3.0GHz" in text


def test_report_reads_top_down(page: str) -> None:
    """The answer first, then the table, figures, verdicts; the method one click away."""
    order = ['class="headline', "<table", "<img", 'id="verdicts"', 'id="failures"', "<details"]
    positions = [page.index(marker) for marker in order]
    assert positions == sorted(positions)
    # Latency against throughput, distributions, stability, resource use: every one drawn.
    assert page.count("data:image/png;base64,") == 4


def test_report_is_self_contained(page: str) -> None:
    external = [r for r in _resources(page) if not r.startswith(("data:", "#"))]
    assert external == []
    assert "http://" not in page and "https://" not in page


def test_report_table_formats_numbers_and_hides_empty_columns(page: str) -> None:
    text = _text(page)
    assert "–" in text  # the failed point's missing numbers
    assert not re.search(r"\bnan\b", text, re.I)
    assert "GPU %" not in text  # no point has GPU readings
    assert "min cos" in text and "0.99991" in text
    assert text.count("INVALID") >= 2 and text.count("FAILED") == 1


def test_no_valid_point_says_why(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    store.append(measured_row("none", 1, median_ms=2.0, seed=1, failed=UNSTABLE))
    headline = _headline(build_report(tmp_path).read_text(encoding="utf-8"))
    assert headline.startswith("No load point was valid") and SLOW_REASON in headline
    assert "was unstable (for example" in headline  # named by its check, not by parsing text


def test_only_failed_points_still_render(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    store.append(failed_row("none", 1))
    store.append(failed_row("none", 2))
    page = build_report(tmp_path).read_text(encoding="utf-8")
    assert _headline(page).startswith("No load point was measured")
    assert FAILED_ERROR in _text(page)
    assert "<img" not in page


def test_sweep_folder_renders_one_report_with_every_run(tmp_path: Path) -> None:
    ResultsStore(tmp_path / "sweep" / "0").append(measured_row("none", 1, 3.0, seed=1))
    ResultsStore(tmp_path / "sweep" / "1").append(measured_row("int8_dynamic", 1, 1.5, seed=2))
    report = build_report(tmp_path / "sweep")
    text = _text(report.read_text(encoding="utf-8"))
    assert report == tmp_path / "sweep" / "report.html"
    assert not (tmp_path / "sweep" / "0" / "report.html").exists()
    assert "mlp / torch / none / direct / concurrency" in text
    assert "mlp / torch / int8_dynamic / direct / concurrency" in text
    assert "2 load points from 2 runs" in text
    assert "int8_dynamic / direct / concurrency at concurrency 1" in _headline(report.read_text())


def test_figures_draw_every_point_and_mark_the_invalid_one(run_dir: Path) -> None:
    df = bench.results.load(run_dir)
    cdf_axes = figures.latency_cdfs(df).axes[0]
    assert len(cdf_axes.get_lines()) == 3 + 1  # three measured points and the p99 guide
    curve_axes = figures.latency_vs_throughput(df).axes[0]
    hollow = [
        c for c in curve_axes.collections if len(c.get_offsets()) and c.get_facecolor()[0][0] == 1
    ]
    # The one invalid point (concurrency 4) is hollow on both its p50 and its p99 curve.
    assert sum(len(c.get_offsets()) for c in hollow) == 2
    assert max(c.get_offsets()[0][0] for c in hollow) == pytest.approx(4 / 0.001)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reports", *args],
        cwd=cwd,
        env=checkout_env(),
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_rerenders_and_prints_the_path(run_dir: Path) -> None:
    (run_dir / "report.html").unlink(missing_ok=True)
    done = _cli(str(run_dir), cwd=run_dir.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(run_dir / "report.html")
    assert (run_dir / "report.html").stat().st_size > 0


@pytest.mark.parametrize("make", [False, True], ids=["missing", "empty folder"])
def test_cli_on_a_path_without_results_exits_2_naming_it(tmp_path: Path, make: bool) -> None:
    path = tmp_path / "no-such-run"
    if make:
        path.mkdir()
    done = _cli(str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert str(path) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_strategy_columns_appear_where_a_strategy_measured_them(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    row = measured_row("none", 1, median_ms=2.0, seed=3)
    store.append({**row, "throttled_fraction": 0.97, "cold_starts": 12, "cold_start_fraction": 0.8})
    text = _text(build_report(tmp_path).read_text(encoding="utf-8"))
    assert "throttled" in text and "97.0%" in text
    assert "cold starts" in text and "80.0%" in text
    assert "USD / 1M" not in text  # no serverless cost in these results


def test_serverless_cost_comes_from_the_plan_store(tmp_path: Path) -> None:
    from bench.capacity.serverless import serverless_costs
    from bench.capacity.store import Plan

    row = {
        **measured_row("none", 1, median_ms=2.0, seed=4),
        "strategy": "serverless",
        "invocations": 1000,
        "cold_starts": 2,
        "gb_seconds_busy": 2000.0,
        "gb_seconds_lifetime": 3000.0,
    }
    ResultsStore(tmp_path).append(row)
    pricing = {
        "currency": "USD",
        "per_gb_second": 1e-6,  # 2 USD per million requests at the usage above
        "per_million_requests": 0.0,
        "billed_time": "busy",
        "as_of": "2026-11-25",
        "source": "test",
    }
    costs = serverless_costs(bench.results.load(tmp_path), pricing)
    Plan(recommendation="Deploy it.", serverless=costs).write(tmp_path)
    text = _text(build_report(tmp_path).read_text(encoding="utf-8"))
    assert "USD / 1M" in text and "2.00" in text
    # Priced anew, the same measurement costs what the new plan says.
    Plan(
        recommendation="Deploy it.",
        serverless=serverless_costs(
            bench.results.load(tmp_path), {**pricing, "per_gb_second": 2e-6}
        ),
    ).write(tmp_path)
    assert "4.00" in _text(build_report(tmp_path).read_text(encoding="utf-8"))


def test_reasons_come_from_the_rules_stored_not_from_splitting_their_text(tmp_path: Path) -> None:
    reason = "errors: 3 of 400 requests failed; all of them timeouts"  # a ';' inside one reason
    store = ResultsStore(tmp_path)
    store.append(measured_row("none", 1, median_ms=2.0, seed=1, failed={"errors": reason}))
    page = build_report(tmp_path).read_text(encoding="utf-8")
    verdicts = page[page.index('id="verdicts"') : page.index("<details")]
    (item,) = re.findall(r"<li>(.*?)</li>", verdicts, re.S)
    assert html.unescape(item) == reason
    assert "was errors (for example" in _headline(page)


def test_rows_stored_before_rules_were_stored_one_by_one_still_render(tmp_path: Path) -> None:
    """Older results: no check_* or verdict_rules; their reasons text is shown as stored."""
    row = measured_row("none", 1, median_ms=2.0, seed=1, failed=UNSTABLE)
    old = {k: v for k, v in row.items() if not k.startswith(("check_", "verdict_", "invalid_c"))}
    ResultsStore(tmp_path).append(old)
    page = build_report(tmp_path).read_text(encoding="utf-8")
    assert SLOW_REASON in _headline(page)
    assert "stored before each point stored its verdict rule by rule" in _text(page)


def test_the_report_stage_imports_only_the_results_and_the_plan_store(tmp_path: Path) -> None:
    script = (
        "import json, sys, reports; print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('bench', 'runners', 'torch', 'onnxruntime'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=checkout_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(json.loads(done.stdout))
    allowed = {"bench", "bench.capacity", "bench.capacity.store"}
    assert {m for m in loaded if not m.startswith("bench.results")} <= allowed, loaded


def test_bench_report_names_a_folder_without_results_and_writes_nothing(
    run_dir: Path, tmp_path: Path, capsys
) -> None:
    missing = tmp_path / "missing"
    out = tmp_path / "comparison"
    assert report_main([str(run_dir), str(missing), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not out.exists()
    assert captured.err.startswith("bench-report: error: ") and str(missing) in captured.err
    assert captured.err.count("\n") == 1
    assert report_main([str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "report.html")


def test_a_rule_too_short_to_judge_is_reported_as_such_not_as_its_rule_failing():
    import pandas as pd

    from reports.build import CHECK_NAMES, TOO_SHORT, failed_rules

    reason = "too short to judge stability: the smallest of 3 windows holds 3 requests"
    rules = [
        {"check": "duration", "rule": "Long enough.", "outcome": "passed", "reason": ""},
        {
            "check": "stability",
            "rule": "Stable.",
            "outcome": "too short to judge",
            "reason": reason,
        },
    ]
    assert failed_rules(pd.Series({"verdict_rules": json.dumps(rules)})) == [(TOO_SHORT, reason)]
    assert CHECK_NAMES[TOO_SHORT] == "too short to judge"
