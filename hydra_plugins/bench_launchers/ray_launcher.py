"""The Hydra launcher `ray`: `bench -m hydra/launcher=ray [hydra.launcher.address=...] ...`.

Hydra's own Ray launcher (hydra-ray-launcher 1.2.2, which installs beside Ray 2.60 here) was
read and not taken: it sends every job with one set of Ray options (no tier per
configuration), pickles the task function with Hydra's state, leaves each job's output on the
node that ran it, and waits for the jobs in order, so one lost node fails the whole sweep and
nothing comes back to the driver. This one sends each configuration as `python -m bench` to a
node of its tier and gathers its run folder back (bench.cluster.ray_sweep).
"""

# (No `from __future__ import annotations` in this package: Hydra's plugin scan executes its
# modules outside sys.modules, where a dataclass cannot resolve string annotations.)
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn

from hydra_plugins.bench_launchers.jobs import SweepLauncher, refuse, returns, task_config

log = logging.getLogger(__name__)


@dataclass
class RayLauncherConf:
    _target_: str = "hydra_plugins.bench_launchers.ray_launcher.RayLauncher"
    # The Ray cluster: "auto" (the one this machine belongs to, `ray start` having joined it),
    # HOST:PORT of its head's GCS, or ray://HOST:10001 (Ray Client).
    address: str = "auto"
    # Times a configuration whose node died is tried again on another node of its tier.
    retries: int = 1


ConfigStore.instance().store(group="hydra/launcher", name="ray", node=RayLauncherConf)


class RayLauncher(SweepLauncher):
    def __init__(self, address: str = "auto", retries: int = 1) -> None:
        self.address = address
        self.retries = retries

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from bench.cluster.ray_sweep import ClusterError, run_sweep
        from bench.run import points_left

        if self.retries < 0:
            refuse(f"hydra.launcher.retries: must be >= 0, got {self.retries}")
        found, configs = self.jobs(job_overrides, initial_job_idx)
        log.info(f"Ray launcher: {len(found)} configurations, to {self.address}")
        try:
            failures = run_sweep(
                found,
                self.address,
                self.retries,
                lambda c: points_left(task_config(configs[c.num]), c.folder),
            )
        except ClusterError as exc:
            refuse(str(exc))
        for num, why in failures.items():
            print(f"FAILED configuration #{num}: {why}")
        return returns(found, configs)
