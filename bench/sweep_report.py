"""A Hydra callback: after a `-m` sweep, one report over every run of the sweep."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.get("report", True):
            return
        from reports import build_report

        print(f"sweep report: {build_report(config.hydra.sweep.dir)}")
