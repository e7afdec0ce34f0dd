"""`python -m bench`: run the configured sweep, write results and the report, print both."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from bench.config import ConfigError, register_configs
from bench.run import run_benchmark

register_configs()

_SHOWN = {
    "label": "point",
    "achieved_qps": "qps",
    "latency_p50_ms": "p50 ms",
    "latency_p99_ms": "p99 ms",
    "sent_latency_p99_ms": "p99 sent ms",
    "cpu_util_pct": "cpu %",
    "valid": "valid",
}


def summary_table(rows: pd.DataFrame) -> str:
    """The few numbers a person reads first, one line per load point."""
    shown = rows.reindex(columns=list(_SHOWN)).rename(columns=_SHOWN)
    shown["valid"] = rows["valid"].map({True: "VALID", False: "INVALID"})
    return shown.to_string(index=False, float_format=lambda v: f"{v:.1f}", na_rep="-")


def _shown(path: Path) -> Path:
    """A path as a person would type it: relative when it lies under the current folder."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


@hydra.main(config_path="pkg://bench.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_dir = hydra_cfg.runtime.output_dir
    try:
        rows = run_benchmark(cfg, run_dir)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
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
    if cfg.report:
        from reports import build_report

        print(f"report:  {_shown(build_report(run_dir))}")
    if (rows["status"] == "failed").all() and hydra_cfg.mode == RunMode.RUN:
        sys.exit(1)


if __name__ == "__main__":
    main()
