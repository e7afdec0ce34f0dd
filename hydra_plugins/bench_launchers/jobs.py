"""What both launchers do with Hydra's jobs: each becomes a Configuration (its number,
overrides, job folder and tier), and each is answered with a JobReturn."""

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from bench.cluster.configuration import Configuration


class SweepLauncher(Launcher):
    """What both launchers do before sending anything: keep the sweep's config at setup (the
    task function is not used: each machine runs `python -m bench` itself), then set up Hydra's
    globals and logging and read the jobs as configurations. Abstract: Hydra's plugin scan
    passes it over."""

    config: DictConfig | None = None
    hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context

    def jobs(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> tuple[list[Configuration], dict[int, DictConfig]]:
        """`configurations` of the jobs, Hydra's globals and logging set up first."""
        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return configurations(self.config, self.hydra_context, job_overrides, initial_job_idx)


def configurations(
    sweep: DictConfig,
    hydra_context: HydraContext,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
) -> tuple[list[Configuration], dict[int, DictConfig]]:
    """Each job as a Configuration, and its composed config (Hydra's node included) by number."""
    found, configs = [], {}
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        config = hydra_context.config_loader.load_sweep_config(sweep, list(overrides))
        with open_dict(config):
            config.hydra.job.id = idx
            config.hydra.job.num = idx
        folder = Path(config.hydra.sweep.dir) / str(config.hydra.sweep.subdir)
        found.append(Configuration(idx, tuple(filter_overrides(overrides)), folder, config.tier))
        configs[idx] = config
    Path(sweep.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)
    return found, configs


def task_config(config: DictConfig) -> DictConfig:
    """A job's config as its task function gets it: without Hydra's own node."""
    return OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])


def returns(found: Sequence[Configuration], configs: dict[int, DictConfig]) -> list[JobReturn]:
    """A completed JobReturn for each configuration: a failed one is recorded in its folder and
    said, not raised, so that the sweep's plan and report still run over what was gathered."""
    return [
        JobReturn(
            overrides=list(c.overrides),
            cfg=task_config(configs[c.num]),
            hydra_cfg=configs[c.num],
            working_dir=str(c.folder),
            task_name=str(configs[c.num].hydra.job.name),
            status=JobStatus.COMPLETED,
            _return_value=None,
        )
        for c in found
    ]


def refuse(why: str) -> NoReturn:
    """Say why the sweep cannot be sent, in one line on stderr, and exit 2, as `bench` says
    any configuration error."""
    print(f"bench: error: {why}", file=sys.stderr)
    sys.exit(2)
