"""`python -m bench` as a user runs it: real processes, real files, real report."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from bench import results
from bench.cli import default_options, help_text, replan_config, stored_config, summary
from bench.config import BenchConfig
from bench.config.backend import OnnxRuntimeBackendConfig
from bench.config.plan import PlanConfig
from bench.registry import options
from tests.conftest import LENIENT, checkout_env, compose

SCHEMAS = options()

TINY = ["scenario.warmup_s=0.3", "scenario.duration_s=1", "accuracy_samples=4"]


def bench(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m bench ARGS` run from `cwd` (outside the checkout, as a user would)."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


# A price given at run time, as a user gives one; bench-plan must keep it.
PRICE = "++catalog.prices={amd-ryzen-9-7950x: {eur_per_month: 99, as_of: 2026-10-07, source: t}}"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, cache_dir) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """One small run of `python -m bench` from a folder of its own: (that folder, the run
    folder, the process), with a plan target and a price given on its command line."""
    where = tmp_path_factory.mktemp("cli")
    run_dir = where / "run"
    args = ["model=mlp", *TINY, *LENIENT, "plan.slo_ms=250", PRICE, f"cache_dir={cache_dir}"]
    return where, run_dir, bench(*args, f"hydra.run.dir={run_dir}", cwd=where)


def test_a_run_writes_results_and_a_report_and_prints_them(tiny_run):
    where, run_dir, proc = tiny_run
    report = re.search(r"^report:\s+(\S+)$", proc.stdout, re.M)
    assert report and where / report.group(1) == run_dir / "report.html"
    assert (run_dir / "report.html").stat().st_size > 10_000
    for label in ("concurrency 1", "concurrency 2", "concurrency 4"):
        assert label in proc.stdout
    rows = results.load(run_dir)
    assert list(rows["label"]) == ["concurrency 1", "concurrency 2", "concurrency 4"]
    # Progress went to the terminal as bars, not as a wall of log lines.
    assert "requests" in proc.stderr


@pytest.mark.slow
def test_the_default_model_runs_end_to_end_on_both_backends(tmp_path, cache_dir):
    """The built-in default (the real all-MiniLM-L6-v2), as a sweep over both backends."""
    sweep = tmp_path / "sweep"
    proc = bench(
        "-m",
        "backend=torch,onnxruntime",
        "scenario.levels=[1,2]",
        *TINY,
        f"cache_dir={cache_dir}",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert f"sweep report: {sweep / 'report.html'}" in proc.stdout
    rows = results.load(sweep)
    assert sorted(rows["backend"].unique()) == ["onnxruntime", "torch"]
    assert (rows["model"] == "minilm").all() and (rows["status"] == "measured").all()
    assert (rows["accuracy_cosine_min"] > 0.9999).all()
    html = (sweep / "report.html").read_text()
    assert "onnxruntime" in html and "torch" in html


def test_a_server_point_from_the_command_line(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    bench(
        "model=mlp",
        "backend=onnxruntime",
        "scenario=server",
        "scenario.target_qps=50",
        *TINY,
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
        "report=false",
        cwd=tmp_path,
    )
    row = pd.read_parquet(run_dir / "results.parquet").iloc[0]
    assert row["target_qps"] == 50.0 and row["scenario"] == "server"
    assert row["predictor_provider"] == "CPUExecutionProvider"
    assert not (run_dir / "report.html").exists()


def _plan(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.capacity", *args],
        cwd=cwd,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_replanning_keeps_what_the_run_was_given_and_changes_what_is_overridden(tiny_run):
    where, run_dir, _ = tiny_run
    assert "under 250 ms" in (run_dir / "plan" / "recommendation.txt").read_text()
    proc = _plan(str(run_dir), "plan.peak_qps=500", cwd=where)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "note:" not in proc.stderr  # it found the run's own config
    sentence = (run_dir / "plan" / "recommendation.txt").read_text()
    assert sentence.startswith("To serve 500 requests/s at p99 under 250 ms")
    sizing = pd.read_csv(run_dir / "plan" / "sizing.csv").set_index("server_id")
    assert sizing.loc["amd-ryzen-9-7950x", "price_eur_month"] == 99.0
    assert "To serve 500 requests/s" in (run_dir / "report.html").read_text()


@pytest.mark.parametrize(
    "override, said",
    [
        ("plan.peak_qps=lots", "could not be converted to Float"),
        ("plan.peak_qsp=5", "Could not override 'plan.peak_qsp'"),
        ("plan.peak_qps=0", "plan.peak_qps: must be > 0"),
    ],
)
def test_replanning_with_a_bad_override_says_so_in_one_line(tiny_run, override, said):
    where, run_dir, _ = tiny_run
    proc = _plan(str(run_dir), override, cwd=where)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("python -m bench.capacity: error: ") and said in proc.stderr
    assert proc.stderr.count("\n") == 1


def _stored(folder: Path, overrides: list[str], name: str = ".hydra/config.yaml") -> Path:
    """A folder with a config stored as Hydra stores one (plain YAML, no types)."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(compose(overrides), path)
    return path


def test_the_stored_config_of_a_run_or_a_sweep_is_found(tmp_path):
    assert stored_config(tmp_path) is None
    sweep = tmp_path / "sweep"
    path = _stored(sweep, ["plan.peak_qps=7"], "multirun.yaml")
    doc = OmegaConf.load(path)
    doc.hydra = {"sweep": {"dir": str(sweep)}}  # a sweep's file holds Hydra's config too
    OmegaConf.save(doc, path)
    cfg, found = stored_config(sweep)
    assert found == path and "hydra" not in cfg and cfg.plan.peak_qps == 7
    run = tmp_path / "run"
    path = _stored(run, ["plan.peak_qps=8"])
    _stored(run, ["plan.peak_qps=9"], "multirun.yaml")
    assert stored_config(run)[1] == path  # a run's own config comes first


def test_replanning_composes_the_overrides_on_the_stored_config_with_its_types(tmp_path):
    _stored(tmp_path, ["model=mlp", "backend=onnxruntime", "plan.slo_ms=250", PRICE])
    cfg, found = replan_config(tmp_path, ["plan.peak_qps=500"])
    assert found == tmp_path / ".hydra" / "config.yaml"
    assert (cfg.plan.peak_qps, cfg.plan.slo_ms) == (500.0, 250.0)
    assert cfg.catalog.prices["amd-ryzen-9-7950x"].eur_per_month == 99
    assert OmegaConf.get_type(cfg.backend) is OnnxRuntimeBackendConfig
    assert OmegaConf.get_type(cfg.plan) is PlanConfig
    # A folder without a stored config: the packaged defaults, and the overrides.
    cfg, found = replan_config(tmp_path / "elsewhere", ["plan.peak_qps=5"])
    assert found is None and cfg.plan.slo_ms == 100.0 and cfg.model.name == "minilm"


def test_help_lists_every_group_and_option_from_the_config_classes():
    text = help_text(SCHEMAS, BenchConfig, default_options())
    assert text.startswith("usage: bench ")
    for group, table in SCHEMAS.items():
        assert f"\n  {group}\n" in text
        for name, cls in table.items():
            line = next(line for line in text.splitlines() if line.split()[:1] == [name])
            assert summary(cls)[:20] in line
    assert "    concurrency *" in text and "    minilm *" in text
    assert "plan.peak_qps=100.0" in text and "cache_dir=~/.cache/bench" in text
    assert "bench-plan" in text and "--hydra-help" in text and "README" in text
    for internal in ("schema/", "servers.yaml", "powered by Hydra"):
        assert internal not in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_help_is_generated_from_the_mapping_it_is_given():
    """The option names come from the mapping passed in (its source can move)."""

    @dataclasses.dataclass
    class Probe:
        """A probe option. Not shown: the second sentence."""

        name: str = "probe"

    text = help_text({"gadget": {"probe": Probe}})
    assert "\n  gadget\n    probe" in text and "A probe option." in text
    assert "second sentence" not in text and "\n  model\n" not in text


def test_a_summary_is_the_first_sentence_of_a_docstring_of_its_own():
    @dataclasses.dataclass
    class Bare:
        name: str = "bare"

    assert summary(Bare) == ""  # not the signature dataclass writes as __doc__
    assert summary(PlanConfig).startswith("The target the capacity planner sizes for")
