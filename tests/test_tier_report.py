"""Tiers side by side, as a user meets them: a real sweep over two tiers, the tier comparison
`bench-report` writes from its folders, every kind of report opened in a real browser (headless
Chromium), and every notebook executed against the same results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

import bench.results
from bench.capacity.serverless import break_even_curve
from bench.capacity.store import Plan
from bench.capacity.tables import NO_VALID_POINT, performance_table
from bench.cli import report_main
from reports import compare, figures
from reports.build import plan_section
from tests.browser import chromium, load_page
from tests.conftest import LENIENT, ROOT, checkout_env

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIERS = ("big", "small")
TINY = ["scenario.warmup_s=0.2", "scenario.duration_s=0.8", "scenario.levels=[1,2]"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, cache_dir) -> Path:
    """A real sweep of the small MLP over two tiers (one process, a few seconds a job): each
    job's run folder, the sweep's plan over both, its report and its tier comparison."""
    where = tmp_path_factory.mktemp("tiers")
    folder = where / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "-m",
            "model=mlp",
            f"tier={','.join(TIERS)}",
            *TINY,
            *LENIENT,
            "accuracy_samples=4",
            "plan.slo_ms=250",
            f"cache_dir={cache_dir}",
            f"hydra.sweep.dir={folder}",
        ],
        cwd=where,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def comparison(sweep: Path, tmp_path_factory) -> Path:
    """`bench-report` over the two tiers' run folders: one comparison, planned over both."""
    out = tmp_path_factory.mktemp("comparison") / "tiers"
    assert report_main([str(sweep / "0"), str(sweep / "1"), "-o", str(out)]) == 0
    return out / "report.html"


def test_the_comparison_puts_each_tier_side_by_side(sweep: Path, comparison: Path) -> None:
    page = comparison.read_text(encoding="utf-8")
    rows = bench.results.load(sweep)
    assert sorted(rows["tier"].unique()) == sorted(TIERS)
    table = compare.tier_table(rows, Plan.read(comparison.parent))
    assert sorted(table["tier"]) == sorted(TIERS)
    assert (table["capacity_qps"] > 0).all() and (table["valid_points"] > 0).all()
    for tier in TIERS:
        assert f'<td class="point">{tier}</td>' in page
    assert "Most capacity at the SLO:" in page
    assert "mlp / torch / none / direct" in page
    # The plan made over both folders sits beside the page, its cross-tier table in it.
    cross = Plan.read(comparison.parent).cross_tier
    assert set(zip(cross["from_tier"], cross["to_tier"], strict=True)) >= {TIERS, TIERS[::-1]}
    assert page.count("data:image/png;base64,") >= 3
    # A sweep over several tiers ends with the same comparison beside its report.
    assert "Hardware tiers compared: 2 tiers" in (sweep / compare.TIERS_FILE).read_text()


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("kind", ["single run", "sweep", "tier comparison"])
def test_each_kind_of_report_renders_in_a_real_browser(
    kind: str, sweep: Path, comparison: Path, tmp_path: Path
) -> None:
    page = {
        "single run": sweep / "0" / "report.html",
        "sweep": sweep / "report.html",
        "tier comparison": comparison,
    }[kind]
    seen = load_page(page, tmp_path / f"{kind.replace(' ', '-')}.png")
    assert seen.errors == []
    assert len(seen.images) >= 3 and seen.broken_images == []
    assert seen.screenshot is not None and seen.screenshot.stat().st_size > 20_000


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_each_notebook_runs_against_a_real_sweep(
    notebook: Path, sweep: Path, comparison: Path, tmp_path: Path, monkeypatch
) -> None:
    papermill = pytest.importorskip("papermill")
    parameters = {
        "compare_hardware_tiers": {
            "results": [str(sweep / "0"), str(sweep / "1")],
            "plan_folder": str(comparison.parent),
        },
        "explore_a_sweep": {"sweep": str(sweep)},
        "serverless_or_dedicated": {"results": str(sweep)},
    }[notebook.stem]
    # The kernel is a process of its own: it imports this checkout as the tests do.
    monkeypatch.setenv("PYTHONPATH", checkout_env()["PYTHONPATH"])
    out = tmp_path / notebook.name
    papermill.execute_notebook(
        str(notebook),
        str(out),
        parameters=parameters,
        cwd=str(notebook.parent),
        kernel_name="python3",
        progress_bar=False,
    )
    outputs = [o for c in nbformat.read(out, 4).cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # its figures drew


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_committed_notebooks_carry_no_outputs_and_take_a_parameters_cell(notebook: Path):
    book = nbformat.read(notebook, 4)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), notebook.name
    assert "parameters" in code[0].metadata.get("tags", []), notebook.name


def test_committed_notebooks_are_the_three_the_readme_names():
    names = {n.stem for n in NOTEBOOKS}
    assert names == {"compare_hardware_tiers", "explore_a_sweep", "serverless_or_dedicated"}
    readme = (ROOT / "README.md").read_text()
    assert all(f"notebooks/{name}.ipynb" in readme for name in names)


# --- the sweep report's first screen, and valid points only ------------------------------------


def _sizing_row(config: str, server: str, servers: float, cost: float, reason: str = "") -> dict:
    return {
        "configuration": config,
        "server_id": server.lower().replace(" ", "-"),
        "server": server,
        "capacity_qps": 100.0 / servers if servers == servers else np.nan,
        "servers": servers,
        "servers_high": servers,
        "monthly_cost_eur": cost,
        "unsized_reason": reason or np.nan,
        "tag": "calibrated",
    }


def test_sweep_sizing_opens_with_the_best_configuration_per_server_and_names_the_unsized():
    slow = "cannot meet the SLO at any load: the service time alone is too slow"
    servers = [f"Server {i}" for i in range(5)]
    rows = [
        _sizing_row("mlp / torch / none / direct", s, 2, 100.0 * (i + 1))
        for i, s in enumerate(servers)
    ]
    rows += [
        _sizing_row("mlp / onnxruntime / none / direct", s, 1, 50.0 * (i + 1))
        for i, s in enumerate(servers)
    ]
    rows += [
        _sizing_row("mlp / torch / int8_dynamic / direct", s, np.nan, np.nan, slow) for s in servers
    ]
    section = plan_section(Plan(recommendation="deploy", sizing=pd.DataFrame(rows)))
    # One row per server, the cheaper configuration on each; the others one click away.
    assert len(section["rows"]) == 5 and len(section["other_rows"]) == 5
    assert all("onnxruntime" in row[1] for row in section["rows"])
    assert section["unsized"] == [
        f"mlp / torch / int8_dynamic / direct, on every catalog server (5): {slow}"
    ]
    assert section["chart"].startswith("data:image/png;base64,")


def _point(backend: str, qps: float, valid: bool) -> dict:
    return {
        "status": "measured",
        "valid": valid,
        "model": "mlp",
        "backend": backend,
        "optimization": "none",
        "strategy": "direct",
        "achieved_qps": qps,
        "latency_p50_ms": 1000 / qps,
        "cpu_util_pct": 90.0,
        "rss_peak_mb": 512.0,
    }


def test_the_performance_table_quotes_valid_points_only_and_says_where_there_are_none():
    frame = pd.DataFrame(
        [
            _point("torch", 100.0, True),
            _point("torch", 900.0, False),  # faster, but INVALID: never quoted
            _point("onnxruntime", 5000.0, False),
        ]
    )
    table = performance_table(frame, None).set_index("Metric")
    throughput = table.loc["Throughput (requests/s), highest measured"]
    assert throughput["Baseline (torch eager fp32)"] == "100.0"
    assert throughput["Optimized"] == "100.0"
    table = performance_table(frame.assign(valid=False), None)
    assert (table["Optimized"] == NO_VALID_POINT).all()
    assert table["Technique"].str.startswith("no valid point").all()


def test_tier_figures_draw_bands_fronts_strategies_and_cold_starts():
    rows = []
    for tier, speed in (("big", 2.0), ("small", 1.0)):
        for strategy, optimization, qps, cosine in (
            ("direct", "none", 100.0, 1.0),
            ("direct", "int8_dynamic", 180.0, 0.995),
            ("http", "none", 80.0, 1.0),
            ("serverless", "none", 20.0, 1.0),
        ):
            rows.append(
                {
                    **_point("torch", qps * speed, True),
                    "tier": tier,
                    "strategy": strategy,
                    "optimization": optimization,
                    "accuracy_cosine_min": cosine,
                    "cold_start_process_s": 0.1 if strategy == "serverless" else np.nan,
                    "cold_start_imports_s": 1.5 if strategy == "serverless" else np.nan,
                    "cold_start_model_load_s": 0.4 if strategy == "serverless" else np.nan,
                }
            )
    frame = pd.DataFrame(rows)
    front = figures.pareto_front(frame).axes[0]
    assert len(front.collections) == 8  # one marker per configuration and tier
    assert len(figures.strategy_comparison(frame).axes[0].patches) == 6  # 3 strategies x 2 tiers
    assert len(figures.cold_start_breakdown(frame).axes[0].patches) == 2 * 3
    capacity = pd.DataFrame(
        {
            "tier": ["big", "small", "small"],
            "source": ["measured", "measured", "predicted from big"],
            "qps": [200.0, 100.0, 110.0],
            "low": [190.0, 95.0, 90.0],
            "high": [210.0, 105.0, 130.0],
        }
    )
    assert len(figures.tier_capacity(capacity).axes[0].patches) == 3
    curve = break_even_curve([1, 50, 100], 60.0, 100.0, 2.0, 30 * 24 * 3600, headroom=0.0)
    assert list(curve["servers"]) == [1, 1, 2]
    assert list(curve["cheaper"]) == ["serverless", "dedicated", "dedicated"]
    assert figures.break_even(curve, "USD").axes[0].get_lines()
