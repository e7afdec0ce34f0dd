"""The command line, and the composition root: the one module that imports every stage.

- `bench [GROUP=OPTION ...] [KEY=VALUE ...]` (also `python -m bench`): measure, judge, plan and
  report. The Hydra entry; its config tree is package data (`pkg://bench.conf`), so an
  installed `bench` runs from any folder.
- `bench-plan RUN [KEY=VALUE ...]` (also `python -m bench.capacity`): plan again from a run's
  stored results, measuring nothing. The overrides apply on top of the config the run itself
  stored (Hydra's `RUN/.hydra/config.yaml`, or a sweep's `multirun.yaml`), so the target,
  prices and catalog given at run time stay unless the command line changes them.
- `bench-report FOLDER...` (also `python -m reports`): render each folder's report again.

One style for all three: `--help` opens with the usage line; an error is one line on stderr
(`PROG: error: ...`, or Hydra's own message for a config that does not compose) and exits 2.
Imports of the stages happen inside the commands, so `--help` starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import textwrap
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench.config import BenchConfig, register_configs, validate
from bench.registry import options
from bench.validation import ConfigError

# The Hydra tree as a Python package: `bench/conf`, shipped in the wheel as package data.
CONFIG_PACKAGE = "bench.conf"
CONFIG_NAME = "config"
HELP_WIDTH = 100


def config_dir() -> Path:
    """The packaged Hydra tree as a folder (where the package is installed, or the checkout)."""
    return Path(resources.files(CONFIG_PACKAGE))


# --- bench: measure, plan, report ---------------------------------------------------------------

_SHOWN = {
    "label": "point",
    "achieved_qps": "qps",
    "latency_p50_ms": "p50 ms",
    "latency_p99_ms": "p99 ms",
    "sent_latency_p99_ms": "p99 sent ms",
    "cpu_util_pct": "cpu %",
    "valid": "valid",
}


# A generative run's, in place of the CPU column: first token, pace, tokens/s, goodput.
_GENERATIVE_SHOWN = {
    "label": "point",
    "achieved_qps": "qps",
    "latency_p50_ms": "p50 ms",
    "latency_p99_ms": "p99 ms",
    "ttft_p99_ms": "TTFT p99",
    "tpot_p99_ms": "TPOT p99",
    "output_tokens_per_s": "tokens/s",
    "goodput_qps": "goodput",
    "valid": "valid",
}


def summary_table(rows: Any) -> str:
    """The few numbers a person reads first, one line per load point."""
    generative = "ttft_p99_ms" in rows and rows["ttft_p99_ms"].notna().any()
    columns = _GENERATIVE_SHOWN if generative else _SHOWN
    shown = rows.reindex(columns=list(columns)).rename(columns=columns)
    shown["valid"] = rows["valid"].map({True: "VALID", False: "INVALID"})
    return shown.to_string(index=False, float_format=lambda v: f"{v:.1f}", na_rep="-")


def _shown(path: Path) -> Path:
    """A path as a person would type it: relative when it lies under the current folder."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


# Set once Hydra has composed a config and entered the run: an exit before that is Hydra's
# report of a config that does not compose.
_composed: list[bool] = []


@hydra.main(config_path=f"pkg://{CONFIG_PACKAGE}", config_name=CONFIG_NAME, version_base="1.3")
def _measure(cfg: DictConfig) -> None:
    from bench.host_support import HostCannotRun
    from bench.results.store import UnwritableRunFolder
    from bench.run import Interrupted, run_benchmark

    _composed.append(True)
    hydra_cfg = HydraConfig.get()
    run_dir = hydra_cfg.runtime.output_dir
    try:
        rows = run_benchmark(cfg, run_dir)
    except HostCannotRun as exc:
        print(f"bench: this host cannot run the configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    except ConfigError as exc:
        print(f"bench: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    except UnwritableRunFolder as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signal if isinstance(exc, Interrupted) else signal.SIGINT
        print(
            f"bench: stopped by {signum.name}; the points measured are kept in "
            f"{_shown(Path(run_dir) / 'results.parquet')}, and the same command measures the "
            "rest",
            file=sys.stderr,
        )
        sys.exit(128 + signum)
    print()
    print(summary_table(rows))
    for _, row in rows[rows["status"] == "failed"].iterrows():
        print(f"FAILED {row['label']}: {row['error']}")
    for _, row in rows[(rows["status"] == "measured") & ~rows["valid"].astype(bool)].iterrows():
        print(f"INVALID {row['label']}: {row['invalid_reasons']} -> {row['recommendation']}")
    print(f"\nresults: {_shown(Path(run_dir) / 'results.parquet')}")
    if cfg.plan.enabled and (rows["status"] == "measured").any():
        from bench.capacity.plan import write_plan

        plan_dir = write_plan(run_dir, cfg)
        print(f"plan:    {_shown(plan_dir)}")
        print(f"         {(plan_dir / 'recommendation.txt').read_text().strip()}")
    elif cfg.plan.enabled:
        print("plan:    none: no load point was measured (see FAILED above)")
    if cfg.report:
        from reports import build_report

        print(f"report:  {_shown(build_report(run_dir))}")
    if (rows["status"] == "failed").all() and hydra_cfg.mode == RunMode.RUN:
        sys.exit(1)


def main() -> None:
    """`bench` and `python -m bench`: Hydra reads `sys.argv`. `--help` (`-h`) prints the
    options generated from the config classes; Hydra's own help is `--hydra-help`."""
    if any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        print(help_text(options(), BenchConfig, default_options(), experiments=experiments()))
        return
    register_configs()
    try:
        _measure()
    except SystemExit as exc:
        # Hydra exits 1 both for a config that does not compose and for a run that failed; the
        # first is a configuration error like any other, so it exits 2 as they do.
        if exc.code == 1 and not _composed:
            sys.exit(2)
        raise


# --- bench --help: generated from the config classes --------------------------------------------

_EXAMPLES = (
    ("bench", "the quick default: MiniLM, PyTorch eager, a concurrency sweep of three points"),
    (
        "bench model=mlp backend=onnxruntime scenario=server scenario.target_qps=50",
        "one open-loop point at 50 requests/s",
    ),
    ("bench scenario=slo_search scenario.slo_ms=50", "the highest rate whose p99 meets 50 ms"),
    ("bench -m backend=torch,onnxruntime", "a sweep: one run per backend, one report over both"),
    ("bench +experiment=tiers", "one model at three tiers of this host, predicted from each other"),
    (
        "bench -m hydra/launcher=ray tier=epyc-2c,xeon-8c backend=torch,onnxruntime",
        "a sweep across a Ray cluster, each configuration on a node of its tier (README)",
    ),
    (
        "bench -m hydra/launcher=k8s_jobs tier=pool-a,pool-b",
        "the sweep written as Kubernetes Jobs, one per tier, measuring nothing here",
    ),
    ("bench model=mlp hydra.run.dir=out/mlp", "choose the run folder"),
    ("bench-plan out/mlp plan.peak_qps=800", "plan again from stored results, measuring nothing"),
    ("bench-report out/mlp", "render the report again"),
    ("bench-report out/a out/b -o out/tiers", "one comparison of two hardware tiers"),
)


def default_options(tree: Path | None = None) -> dict[str, str]:
    """Each group's default option, read from the packaged `config.yaml`'s defaults list."""
    primary = OmegaConf.load((tree or config_dir()) / f"{CONFIG_NAME}.yaml")
    chosen: dict[str, str] = {}
    for entry in primary.get("defaults", []):
        if isinstance(entry, Mapping) or OmegaConf.is_dict(entry):
            for group, option in entry.items():
                chosen[str(group)] = str(option)
    return chosen


def experiments(tree: Path | None = None) -> dict[str, str]:
    """The packaged experiment presets (`conf/experiment/NAME.yaml`, run as `+experiment=NAME`),
    each with the first sentence of the comment that opens it."""
    found = {}
    for path in sorted(((tree or config_dir()) / "experiment").glob("*.yaml")):
        comment = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            if not line.startswith("# @package"):
                comment.append(line.lstrip("# ").strip())
        text = " ".join(comment)
        end = text.find(". ")
        found[path.stem] = text if end < 0 else text[: end + 1]
    return found


def summary(cls: type, limit: int = 150) -> str:
    """The first sentence of a class's docstring, clipped at a clause boundary (outside
    parentheses) to at most `limit` characters; empty where the class has no docstring of its
    own (a dataclass without one gets its signature as `__doc__`, which says nothing new)."""
    doc = cls.__dict__.get("__doc__") or ""
    if not doc or doc.startswith(f"{cls.__name__}("):
        return ""
    paragraph = " ".join(textwrap.dedent(doc).strip().split("\n\n")[0].split())
    end = paragraph.find(". ")
    sentence = paragraph if end < 0 else paragraph[: end + 1]
    if len(sentence) <= limit:
        return sentence
    depth, cut = 0, -1
    for i, char in enumerate(sentence[:limit]):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char in ";:," and sentence[i + 1 : i + 2] == " ":
            cut = i
    return sentence[:cut] if cut > 0 else sentence[:limit].rsplit(" ", 1)[0] + " ..."


def _value(value: Any) -> str:
    """A default as it is typed on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value or "''"
    return str(value)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return "???"


def _described(name: str, text: str, indent: int, column: int) -> list[str]:
    """`name` at `indent`, then `text` from `column`, wrapped with a hanging indent."""
    head = " " * indent + name
    if not text:
        return [head]
    first = head.ljust(column) if len(head) < column - 1 else head + "  "
    return textwrap.wrap(
        text,
        HELP_WIDTH,
        initial_indent=first,
        subsequent_indent=" " * column,
        break_on_hyphens=False,
    )


def _settings(prefix: str, instance: Any, indent: int) -> list[str]:
    """`prefix.field=default` for each field of a settings dataclass, filled into lines."""
    pairs = [
        f"{prefix}{f.name}={_value(getattr(instance, f.name))}"
        for f in dataclasses.fields(instance)
    ]
    return textwrap.wrap(
        "  ".join(pairs),
        HELP_WIDTH,
        initial_indent=" " * indent,
        subsequent_indent=" " * indent,
        break_on_hyphens=False,
        break_long_words=False,
    )


def help_text(
    schemas: Mapping[str, Mapping[str, type]],
    top: type | None = None,
    defaults: Mapping[str, str] | None = None,
    prog: str = "bench",
    experiments: Mapping[str, str] | None = None,
) -> str:
    """`bench --help`, generated: each group of `schemas` (group -> {option: config class})
    with its options and the first sentence of each class's docstring; then, from `top` (the
    root config class), its settings sections (`plan`) and top-level settings with their
    defaults; the experiment presets (`experiments`: name -> what it runs); examples; where to
    read more. `defaults` marks each group's default option."""
    defaults = defaults or {}
    lines = [
        f"usage: {prog} [GROUP=OPTION ...] [GROUP.FIELD=VALUE ...] [KEY=VALUE ...]",
        f"       {prog} -m GROUP=OPTION,OPTION ... [KEY=VALUE ...]     (a sweep: one run each)",
        f"       {prog} [...] --cfg job        (print the composed config, run nothing)",
        "",
        *textwrap.wrap(
            "Measure a model as it will be served (a deployment strategy, a backend and an "
            "optimization, driven by a load scenario), judge every load point VALID or INVALID "
            "and why, size the servers that meet the plan's target, and write results.parquet, "
            "report.html and plan/ into the run folder (runs/DATE/TIME, or hydra.run.dir=DIR).",
            HELP_WIDTH,
        ),
        "",
        "Pick one option per group with GROUP=OPTION (* marks the default); set one of its fields",
        "with GROUP.FIELD=VALUE.",
    ]
    column = 4 + max(len(name) for table in schemas.values() for name in table) + 4
    for group, table in schemas.items():
        lines += ["", f"  {group}"]
        for name, cls in table.items():
            mark = f"{name} *" if defaults.get(group) == name else name
            lines += _described(mark, summary(cls, 2 * (HELP_WIDTH - column)), 4, column)
    if top is not None:
        scalars = []
        for f in dataclasses.fields(top):
            if f.name in schemas:
                continue
            value = _default(f)
            if dataclasses.is_dataclass(value):
                lines += ["", *_described(f.name, summary(type(value)), 2, column)]
                lines += _settings(f"{f.name}.", value, 4)
            else:
                scalars.append(f"{f.name}={_value(value)}")
        if scalars:
            lines += ["", "  other settings"]
            lines += textwrap.wrap(
                "  ".join(scalars),
                HELP_WIDTH,
                initial_indent="    ",
                subsequent_indent="    ",
                break_long_words=False,
            )
    if experiments:
        lines += ["", "Experiment presets, +experiment=NAME (times on 2 cores)"]
        for name, what in experiments.items():
            lines += _described(name, what, 4, column)
    lines += ["", "Examples:"]
    for command, what in _EXAMPLES:
        lines += [f"  # {what}", f"  {command}"]
    lines += [
        "",
        f"An option's fields and their values:  {prog} GROUP=OPTION --cfg job",
        f"Hydra's own flags (--cfg, --multirun, --config-dir, completion):  {prog} --hydra-help",
        "Re-plan or re-render without measuring:  bench-plan --help, bench-report --help",
        "Read more: README.md in the project's source (every option, the run folder, the method).",
    ]
    return "\n".join(lines)


# --- bench-plan and bench-report -----------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error said in one line, as every error of these commands."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _fail(prog: str, exc: BaseException) -> int:
    """Say an error in one line on stderr, with its cause's first line where the cause says
    more (Hydra's "Error merging override" names the override, its cause what is wrong with
    it); return the exit status, 2."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    cause = str(exc.__cause__ or "").strip().split("\n")[0]
    if cause and cause not in text:
        text = f"{text}: {cause}"
    print(f"{prog}: error: {text or type(exc).__name__}", file=sys.stderr)
    return 2


def stored_config(folder: Path) -> tuple[DictConfig, Path] | None:
    """The job config a run folder (`.hydra/config.yaml`) or a sweep folder (`multirun.yaml`,
    the sweep's base config, which its sweep-wide plan used) was measured with, as Hydra
    stored it; None where the folder holds neither."""
    run = folder / ".hydra" / f"{CONFIG_NAME}.yaml"
    if run.is_file():
        return OmegaConf.load(run), run
    sweep = folder / "multirun.yaml"
    if sweep.is_file():
        cfg = OmegaConf.load(sweep)
        cfg.pop("hydra", None)
        return cfg, sweep
    return None


def typed(stored: DictConfig, schemas: Mapping[str, Mapping[str, type]], top: type) -> DictConfig:
    """A stored config on its schemas again (Hydra stores plain YAML): an override is then
    type-checked as at run time, and a field added since the run gets its default. A group
    whose option the schemas no longer know stays untyped."""
    base = OmegaConf.structured(top)
    for group, table in schemas.items():
        name = OmegaConf.select(stored, f"{group}.name", default=None)
        if name in table:
            base[group] = OmegaConf.structured(table[name])
    return OmegaConf.merge(base, stored)


def replan_config(
    folder: Path,
    overrides: Sequence[str],
    schemas: Mapping[str, Mapping[str, type]] | None = None,
    top: type = BenchConfig,
) -> tuple[DictConfig, Path | None]:
    """The config to plan `folder` with: its stored config (see `stored_config`), typed, with
    `overrides` applied by Hydra as on the `bench` command line; where the folder stored
    none, the packaged tree with the overrides. Returns it and the stored file used."""
    register_configs()
    found = stored_config(folder)
    if found is None:
        with hydra.initialize_config_module(CONFIG_PACKAGE, version_base="1.3"):
            return hydra.compose(CONFIG_NAME, overrides=list(overrides)), None
    stored, path = found
    node = "bench_plan_stored_run"
    schemas = options() if schemas is None else schemas
    ConfigStore.instance().store(name=node, node=typed(stored, schemas, top))
    with hydra.initialize(config_path=None, version_base="1.3"):
        return hydra.compose(node, overrides=list(overrides)), path


_PLAN_EXAMPLES = """\
examples:
  bench-plan runs/2026-11-25/11-12-40 plan.peak_qps=800 plan.slo_ms=50
  bench-plan runs/multirun/2026-11-25/11-12-40 plan.min_servers=2
  bench-plan RUN '++catalog.prices={amd-ryzen-9-7950x: {eur_per_month: 99, as_of: 2026-10-07, \
source: URL}}'
"""


def plan_main(argv: Sequence[str] | None = None, prog: str = "bench-plan") -> int:
    """`bench-plan RUN [KEY=VALUE ...]`: write RUN/plan again and re-render RUN's report."""
    parser = _Parser(
        prog=prog,
        description=textwrap.fill(
            "Plan again from a run's stored results, for another target, catalog or prices, "
            "measuring nothing: rewrite RUN/plan/ and re-render RUN/report.html. The overrides "
            "apply on top of the config the run stored (RUN/.hydra/config.yaml, or a sweep's "
            "multirun.yaml), so what the run was given stays unless you change it.",
            79,
        ),
        epilog=_PLAN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", metavar="RUN", help="a run folder, or a sweep folder")
    parser.add_argument(
        "overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="Hydra overrides, as for bench: plan.peak_qps=800, ++catalog.prices={...}",
    )
    args = parser.parse_args(argv)
    folder = Path(args.run)
    if not folder.is_dir():
        return _fail(prog, FileNotFoundError(f"{folder}: no such results folder"))
    try:
        cfg, stored = replan_config(folder, args.overrides)
        validate(cfg)
        from bench.capacity.plan import write_plan

        plan_dir = write_plan(folder, cfg)
    except (ConfigError, FileNotFoundError, HydraException, OmegaConfBaseException) as exc:
        return _fail(prog, exc)
    if stored is None:
        print(
            f"{prog}: note: {folder} holds no stored config (.hydra/config.yaml, multirun.yaml); "
            "planned with the packaged defaults and the overrides given",
            file=sys.stderr,
        )
    print((plan_dir / "recommendation.txt").read_text().strip())
    print(f"plan: {plan_dir}")
    if cfg.get("report", True):
        # The report shows the plan, so it is rendered again with the new one.
        from reports import build_report

        print(f"report: {build_report(folder)}")
    return 0


_REPORT_EXAMPLES = """\
examples:
  bench-report runs/2026-11-25/11-12-40                 re-render that run's report.html
  bench-report runs/big-host runs/small-host runs/edge   one comparison of the three tiers,
                                                        in comparison/report.html
  bench-report A B -o out/tiers plan.peak_qps=500       the comparison elsewhere, planned
                                                        for another target
"""
DEFAULT_COMPARISON = "comparison"


def report_main(argv: Sequence[str] | None = None, prog: str = "bench-report") -> int:
    """`bench-report FOLDER [FOLDER ...] [-o OUT] [KEY=VALUE ...]`: one folder, its report.html
    rendered again (and its tiers.html where it holds several tiers); several, one tier
    comparison of all their results, planned over them all, in OUT."""
    parser = _Parser(
        prog=prog,
        description=textwrap.fill(
            "Render reports from stored results, measuring nothing. One FOLDER: render its "
            "report.html again (and tiers.html, the tier comparison, where its results span "
            "several tiers). Several: plan over all their results (the target, catalog and "
            "prices the first one stored, with the KEY=VALUE overrides) and write one "
            "self-contained comparison of their hardware tiers, OUT/report.html, with the plan "
            "in OUT/plan/. Prints the path of each page written.",
            79,
        ),
        epilog=_REPORT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "folders",
        nargs="+",
        metavar="FOLDER",
        help="a run or sweep folder; KEY=VALUE: a plan override (plan.peak_qps=500)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help=f"the comparison's folder (default: ./{DEFAULT_COMPARISON}); gives a comparison "
        "even of one folder",
    )
    args = parser.parse_args(argv)
    folders = [f for f in args.folders if Path(f).exists() or "=" not in f]
    overrides = [f for f in args.folders if f not in folders]
    if not folders:
        parser.error("no FOLDER given")
    if len(folders) == 1 and args.output is None:
        if overrides:
            parser.error("overrides plan a comparison of several folders (or give -o OUT)")
        return _rerender(folders[0], prog)
    return _compare(folders, Path(args.output or DEFAULT_COMPARISON), overrides, prog)


def _rerender(folder: str, prog: str) -> int:
    from reports.build import load_results, report_folder, write_report
    from reports.compare import TIERS_FILE, build_comparison, tiers

    try:
        frame = load_results(folder)
    except (FileNotFoundError, ValueError) as exc:
        # Both name the path (or the file with an unknown schema); a traceback would bury it.
        return _fail(prog, exc)
    where = report_folder(folder)
    print(write_report(frame, where))
    if tiers(frame).nunique() > 1:
        print(build_comparison(frame, where, TIERS_FILE))
    return 0


def _compare(folders: list[str], out: Path, overrides: list[str], prog: str) -> int:
    """Plan over every folder's results together, then render the comparison beside it."""
    from bench import results
    from bench.capacity.plan import plan_results
    from reports.compare import build_comparison

    missing = [f for f in folders if not Path(f).exists()]
    if missing:
        return _fail(prog, FileNotFoundError(f"{', '.join(missing)}: no such results folder"))
    try:
        frame = results.load(folders)
        cfg, _ = replan_config(Path(folders[0]), overrides)
        validate(cfg)
        if (frame.get("status") == "measured").any():
            plan_results(frame, cfg, out).write(out)
    except (
        ConfigError,
        FileNotFoundError,
        ValueError,
        HydraException,
        OmegaConfBaseException,
    ) as exc:
        return _fail(prog, exc)
    print(build_comparison(frame, out))
    return 0


# --- bench-compare -------------------------------------------------------------------------------

_COMPARE_EXAMPLES = """\
examples:
  bench-compare runs/baseline runs/candidate
  bench-compare base cand gate.max_p99_regression=5% gate.min_accuracy=0.99 --markdown pr.md
  bench-compare base cand gate.max_memory_regression=null gate.invalid=skip

exit status: 0 the gate passed (every gated change within its threshold or within noise),
1 a gated metric regressed beyond its threshold with confidence (or a gated point is INVALID),
2 bad input (a folder without results, no point in common, a setting that does not parse).
"""


def compare_main(argv: Sequence[str] | None = None, prog: str = "bench-compare") -> int:
    """`bench-compare BASELINE CANDIDATE [gate.FIELD=VALUE ...] [--markdown FILE]`."""
    from bench.compare.gate import GateConfig

    fields = ", ".join(
        f"{f.name}={_value(getattr(GateConfig(), f.name))}" for f in dataclasses.fields(GateConfig)
    )
    parser = _Parser(
        prog=prog,
        description=textwrap.fill(
            "Compare two stored runs (run or sweep folders) point by point, matched by "
            "configuration and load: p50 and p99 latency, throughput (and at the SLO where the "
            "scenario has one), peak memory and accuracy, each with a confidence interval from "
            "the stored per-request samples and a verdict (faster, slower, same, unsure). Print "
            "a Markdown summary for a pull request and fail (exit 1) when a gated metric "
            f"regressed beyond its threshold. Gate settings and defaults: {fields}.",
            79,
        ),
        epilog=_COMPARE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("baseline", metavar="BASELINE", help="the run or sweep folder before")
    parser.add_argument("candidate", metavar="CANDIDATE", help="the run or sweep folder after")
    parser.add_argument(
        "settings", nargs="*", default=[], metavar="gate.FIELD=VALUE", help="gate thresholds"
    )
    parser.add_argument(
        "--markdown", metavar="FILE", help="write the Markdown summary here (default: stdout)"
    )
    args = parser.parse_args(argv)
    from bench.compare import compare
    from bench.compare.gate import gate_config
    from bench.compare.markdown import headline, markdown

    try:
        gate = gate_config(args.settings)
        comparison = compare(args.baseline, args.candidate, gate)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        return _fail(prog, exc)
    text = markdown(comparison)
    if args.markdown:
        Path(args.markdown).write_text(text)
        for failure in comparison.failures:
            print(f"FAIL {failure}")
        print(headline(comparison))
        print(f"gate: {'passed' if comparison.passed else 'FAILED'}; summary: {args.markdown}")
    else:
        print(text, end="")
    return 0 if comparison.passed else 1
