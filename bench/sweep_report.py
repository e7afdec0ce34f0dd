"""A Hydra callback: after a `-m` sweep, one plan and one report over all its runs."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepReport(Callback):
    """The plan and the report over every run of the sweep: the comparison across configs;
    where its runs span several hardware tiers, the tier comparison too (`tiers.html`)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from bench.results import result_files

        sweep_dir = config.hydra.sweep.dir
        if not result_files(sweep_dir):
            return  # nothing measured here (a sweep exported as Kubernetes Jobs, say)
        if config.plan.enabled:
            from bench.capacity.plan import write_plan

            try:
                print(f"sweep plan: {write_plan(sweep_dir, config)}")
            except FileNotFoundError:
                return  # no job measured anything: each job already said why
        if config.get("report", True):
            from reports import build_report
            from reports.build import load_results
            from reports.compare import TIERS_FILE, build_comparison, tiers

            print(f"sweep report: {build_report(sweep_dir)}")
            frame = load_results(sweep_dir)
            if tiers(frame).nunique() > 1:
                print(f"tier report:  {build_comparison(frame, sweep_dir, TIERS_FILE)}")
