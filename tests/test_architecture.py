"""The map's arrows hold in the imports: model -> backend -> runner <- load driver -> results ->
planner -> report, every arrow one way (ARCHITECTURE.md). Read from the source, statically, so a
lazy import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The composition roots: the modules allowed to import every stage.
ROOTS = {"bench/__main__.py", "bench/cli.py", "bench/run.py", "bench/sweep_report.py"}
# Thin aliases of the composition root (`python -m bench.capacity`, `python -m reports`).
ROOTS |= {"bench/capacity/__main__.py", "bench/compare/__main__.py", "reports/__main__.py"}


def imports(path: Path) -> set[str]:
    """Every module `path` imports, absolute names, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def sources(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "grpc_v2" not in p.parts)


def offending(folder: str, allowed) -> list[str]:
    bad = []
    for path in sources(folder):
        name = str(path.relative_to(ROOT))
        if name in ROOTS:
            continue
        bad += [f"{name} imports {m}" for m in sorted(imports(path)) if not allowed(name, m)]
    return bad


def _top(module: str) -> str:
    return module.split(".")[0]


def test_bench_never_imports_a_runner():
    # Strategies are resolved through the registry by name; runners import bench, not back.
    assert offending("bench", lambda _, m: _top(m) not in ("runners", "reports")) == []


def test_the_load_driver_imports_no_later_stage():
    later = ("bench.capacity", "bench.backends", "bench.models", "bench.metrics")
    assert offending("bench/load", lambda _, m: not m.startswith(later)) == []


@pytest.mark.parametrize("stage", ["bench/models", "bench/backends"])
def test_models_and_backends_know_nothing_of_serving_or_planning(stage):
    later = ("bench.load", "bench.capacity", "bench.results", "bench.metrics", "runners")
    assert offending(stage, lambda _, m: not m.startswith(later)) == []


def test_the_planner_imports_no_measuring_code():
    # A pure function of stored results, target and catalog: re-planning measures nothing.
    measuring = ("bench.metrics", "bench.backends", "bench.models", "bench.load", "torch")
    measuring += ("onnxruntime", "runners")
    assert offending("bench/capacity", lambda _, m: not m.startswith(measuring)) == []


def test_the_comparison_reads_only_stored_results():
    # results -> compare: a pure function of two stored runs and the gate's settings; comparing
    # measures nothing and plans nothing.
    def allowed(_, module: str) -> bool:
        if _top(module) != "bench":
            return _top(module) not in ("runners", "reports", "torch", "onnxruntime")
        return module.startswith(("bench.results", "bench.compare")) or (
            module == "bench.validation"
        )

    assert offending("bench/compare", allowed) == []


def test_reports_read_only_results_and_the_plan_store():
    def allowed(_, module: str) -> bool:
        if _top(module) != "bench":
            return _top(module) != "runners"
        return module == "bench" or module.startswith(("bench.results", "bench.capacity.store"))

    assert offending("reports", allowed) == []


def test_the_cluster_sends_configurations_and_never_measures_in_process():
    # bench/cluster (and its Hydra launcher) hands whole configurations to `python -m bench` on
    # a node and gathers run folders: it may ask the run which points are left and use the
    # results store, nothing that measures, serves or renders.
    measuring = ("bench.load", "bench.metrics", "bench.backends", "bench.models", "runners")
    measuring += ("reports", "torch", "onnxruntime", "bench.capacity.planner")
    assert offending("bench/cluster", lambda _, m: not m.startswith(measuring)) == []
    assert offending("hydra_plugins", lambda _, m: not m.startswith(measuring)) == []


def test_ray_is_imported_only_by_the_cluster_package():
    bad = [
        f"{path.relative_to(ROOT)} imports {m}"
        for folder in ("bench", "runners", "reports")
        for path in sources(folder)
        if "cluster" not in path.relative_to(ROOT).parts
        for m in sorted(imports(path))
        if _top(m) == "ray"
    ]
    assert bad == []


# Modules that (de)serialise Python objects, running code from the bytes they read.
_PICKLERS = {"pickle", "cPickle", "cloudpickle", "dill", "shelve", "marshal", "joblib"}


def _unsafe_loads(path: Path) -> list[str]:
    """Calls in `path` that would unpickle: torch.load without weights_only=True, np.load
    with allow_pickle=True."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
        keywords = {k.arg: k.value for k in node.keywords}
        flag = keywords.get("weights_only")
        if (owner, node.func.attr) == ("torch", "load") and not (
            isinstance(flag, ast.Constant) and flag.value is True
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} torch.load")
        allow = keywords.get("allow_pickle")
        if node.func.attr == "load" and isinstance(allow, ast.Constant) and allow.value:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} load(allow_pickle=True)")
    return found


def test_nothing_is_pickled_across_processes_and_files_load_with_safe_loaders():
    """Workers are built from the config (YAML), answer in v2 JSON, binary tensors or protobuf:
    no stage imports a pickler or multiprocessing (which pickles what it passes), and every
    torch.load is weights_only."""
    bad = []
    for folder in ("bench", "runners", "reports", "hydra_plugins"):
        for path in sources(folder):
            used = {_top(m) for m in imports(path)} & (_PICKLERS | {"multiprocessing"})
            bad += [f"{path.relative_to(ROOT)} imports {m}" for m in sorted(used)]
            bad += _unsafe_loads(path)
    assert bad == []
