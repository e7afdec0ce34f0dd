import os
import subprocess
from pathlib import Path, PurePosixPath

import psutil
import pytest

from bench.cli import CONFIG_PACKAGE, config_dir

# The checkout the tests run from; subprocesses import it through PYTHONPATH and run elsewhere.
ROOT = Path(__file__).resolve().parents[1]
# The Hydra tree as the code finds it: package data (bench/conf), here or where installed.
CONF_DIR = str(config_dir())


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    """One cache for the session: the ONNX export of a model is made once, as in real use, and
    so is the host calibration every run stores in its rows, on a short budget (a run's default
    is 30 s, spent once per host) that the tests' runs then find cached."""
    from bench.metrics.calibration import host_calibration

    path = str(tmp_path_factory.mktemp("bench-cache"))
    host_calibration(path, budget_s=2.0)
    return path


# Verdict thresholds a tiny run meets, for tests that need VALID points (the planner sizes only
# from those): short windows, few requests, any spread across windows, late sends allowed.
LENIENT = [
    "scenario.min_duration_s=0.1",
    "scenario.min_requests=1",
    "scenario.stability_tolerance=1000",
    "scenario.max_late_fraction=1",
]


def compose(overrides: list[str]):
    """The config `bench` would run with these overrides; the model's core sharing pinned to 1
    unless they set it (its probe starts copies of the model, seconds a configuration: tests
    that run it say `core_sharing=null`)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from bench.config import register_configs

    register_configs()
    if not any(o.lstrip("+~").startswith("core_sharing=") for o in overrides):
        overrides = [*overrides, "core_sharing=1"]
    with initialize_config_module(CONFIG_PACKAGE, version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def checkout_env() -> dict[str, str]:
    """The environment for a subprocess run outside the checkout: ours, the checkout first on
    PYTHONPATH (as pytest's `pythonpath` puts it first on sys.path here)."""
    path = [str(ROOT), os.environ.get("PYTHONPATH")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}


# What Python and pytest write into a checkout by design.
_CACHES = {"__pycache__", ".pytest_cache", ".benchmarks", ".ruff_cache"}


def _untracked() -> set[str] | None:
    """The checkout's untracked and ignored paths (a wholly untracked folder as one entry), less
    caches; None outside a git checkout."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "--others", "--directory", "--no-empty-directory"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {
        line
        for line in listed.splitlines()
        if not _CACHES & set(PurePosixPath(line).parts) and not line.endswith(".egg-info/")
    }


@pytest.fixture(scope="session", autouse=True)
def checkout_stays_clean():
    """Tests write under tmp_path only: fail the session if the checkout gained a path (a new
    file inside a folder that was already untracked, such as runs/, is not seen)."""
    before = _untracked()
    yield
    if before is not None:
        added = sorted(_untracked() - before)
        assert not added, f"the tests wrote into the checkout {ROOT}: {added}"


def descendants() -> set[int]:
    """The pids of every process this test process started, and theirs."""
    return {p.pid for p in psutil.Process().children(recursive=True)}


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (a zombie is not)."""
    running = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.add(pid)
        except psutil.NoSuchProcess:
            pass
    return running
