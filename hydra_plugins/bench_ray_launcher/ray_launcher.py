"""The Hydra launcher `ray`: `bench -m ... hydra/launcher=ray [hydra.launcher.address=...]`.

Hydra's own Ray launcher (hydra-ray-launcher) was tried and not taken: it sends every job with
one set of Ray options (no tier per configuration), pickles the task function with Hydra's
state, leaves each job's output on the node that ran it, and waits for the jobs in order, so
one lost node fails the whole sweep and nothing comes back to the driver. This one sends each
configuration as `python -m bench` to a node of its tier and gathers its run folder back.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass
class RayLauncherConf:
    # (No `from __future__ import annotations` in this module: Hydra's plugin scan executes it
    # outside sys.modules, where a dataclass cannot resolve string annotations.)
    _target_: str = "hydra_plugins.bench_ray_launcher.ray_launcher.RayLauncher"
    # The Ray cluster: "auto" (the one this machine belongs to, `ray start` having joined it),
    # HOST:PORT of its head's GCS, or ray://HOST:10001 (Ray Client).
    address: str = "auto"
    # Times a configuration whose node died is tried again on another node of its tier.
    retries: int = 1


ConfigStore.instance().store(group="hydra/launcher", name="ray", node=RayLauncherConf)


class RayLauncher(Launcher):
    def __init__(self, address: str = "auto", retries: int = 1) -> None:
        self.address = address
        self.retries = retries
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        # The task function is not used: each node runs `python -m bench` itself.
        self.config = config
        self.hydra_context = hydra_context

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from bench.cluster.ray_sweep import Configuration, run_sweep
        from bench.run import points_left

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        if self.retries < 0:
            raise ValueError(f"hydra.launcher.retries: must be >= 0, got {self.retries}")
        configurations, configs = [], {}
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
            with open_dict(config):
                config.hydra.job.id = idx
                config.hydra.job.num = idx
            folder = Path(config.hydra.sweep.dir) / str(config.hydra.sweep.subdir)
            configurations.append(
                Configuration(idx, tuple(filter_overrides(overrides)), folder, config.tier)
            )
            configs[idx] = config
        Path(self.config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)
        log.info(f"Ray launcher: {len(configurations)} configurations, to {self.address}")
        failures = run_sweep(
            configurations,
            self.address,
            self.retries,
            lambda c: points_left(_without_hydra(configs[c.num]), c.folder),
        )
        for num, why in failures.items():
            print(f"FAILED configuration #{num}: {why}")
        # A failed configuration is recorded, not raised: the sweep's plan and report still
        # run over every configuration gathered.
        return [
            JobReturn(
                overrides=list(c.overrides),
                cfg=_without_hydra(configs[c.num]),
                hydra_cfg=configs[c.num],
                working_dir=str(c.folder),
                task_name=str(configs[c.num].hydra.job.name),
                status=JobStatus.COMPLETED,
                _return_value=None,
            )
            for c in configurations
        ]


def _without_hydra(config: DictConfig) -> DictConfig:
    """The job's config as its task function gets it: without Hydra's own node."""
    return OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
