"""A sweep's configurations on a Ray cluster, gathered as each finishes (the driver's side of
`hydra/launcher=ray`).

What a node offers, as Ray custom resources given to `ray start --resources`:
- `bench_slot: 1`: each configuration asks for one, so a node measures one at a time and
  points never disturb each other (a node with more slots would run several at once);
- `tier:NAME: 1`: a configuration whose `tier=NAME` runs only on such nodes (and its rows say
  `tier` NAME); one with no tier runs on any node with a free slot.

A configuration, not a load point, is the unit sent: its points share a started runner and a
built model (as locally), an adaptive scenario (`slo_search`) picks each point from the ones
before, and the serving strategies keep their servers and load generator on one node, over
loopback. Each is gathered into its job folder (`hydra.sweep.dir`/`hydra.sweep.subdir`) the
moment it finishes, so a crash of the driver loses only the configurations in flight (Ray
stops them with it); a later run of the same sweep sends only configurations with points left
(`bench.run.points_left`), with what was gathered of them, wherever it was measured.

Faults: a node that dies mid-configuration (its raylet killed, the machine gone) is Ray's to
notice; the configuration is then retried from its start on another node of its tier, up to
`retries` times. Where none is left (the tier's last node died) or the retries are spent, the
configuration is recorded as failed (`cluster_failure.txt` in its job folder, and said at the
end) and the sweep goes on; every folder gathered before stays as it was.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence

from bench.cluster.configuration import Configuration
from bench.cluster.node_run import NodeResult, measure_configuration
from bench.cluster.shards import gathered, unpack
from bench.results import RESULTS_FILE

log = logging.getLogger(__name__)

SLOT = "bench_slot"
TIER_PREFIX = "tier:"
FAILURE_FILE = "cluster_failure.txt"


class ClusterError(RuntimeError):
    """The sweep cannot be sent: no cluster there, or none of its nodes can run a
    configuration; the message says what to start or set."""


def resources(configuration: Configuration) -> dict[str, float]:
    """The Ray resources a configuration asks for: a slot, on a node of its tier."""
    wanted = {SLOT: 1.0}
    if configuration.tier:
        wanted[TIER_PREFIX + configuration.tier] = 1.0
    return wanted


def _node_run(overrides: list[str], previous: dict[str, bytes]) -> NodeResult:
    """The task each configuration is: measured by `bench` in the node's own environment
    (that of its raylet, as `ray start` was given it, not the worker's, where Ray sets
    OMP_NUM_THREADS=1 and its own variables)."""
    import psutil
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    try:
        env = psutil.Process(int(os.environ["RAY_RAYLET_PID"])).environ()
    except (KeyError, ValueError, psutil.Error):
        # The raylet's environment unreadable (another user's process): the worker's, less
        # the thread count Ray imposes on it.
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    node = f"{socket.gethostname()}/{node_id[:12]}"
    return measure_configuration(overrides, previous, node, env)


def check_cluster(resources: dict[str, float], configurations: Sequence[Configuration]) -> None:
    """ClusterError unless some node offers a slot and each tier asked for."""
    tiers = sorted(k[len(TIER_PREFIX) :] for k in resources if k.startswith(TIER_PREFIX))
    if resources.get(SLOT, 0) < 1:
        raise ClusterError(
            f"no node of the Ray cluster offers the resource {SLOT!r}: start each measuring "
            f'node with ray start --resources \'{{"{SLOT}": 1, "{TIER_PREFIX}NAME": 1}}\''
        )
    for tier in sorted({c.tier for c in configurations if c.tier}):
        if TIER_PREFIX + tier not in resources:
            raise ClusterError(
                f"tier={tier}: no node of the Ray cluster offers the resource "
                f"'{TIER_PREFIX}{tier}'; its tiers: {', '.join(tiers) or 'none'}"
            )


def run_sweep(
    configurations: Sequence[Configuration],
    address: str,
    retries: int,
    has_points_left: Callable[[Configuration], bool],
    poll_s: float = 1.0,
) -> dict[int, str]:
    """Send each configuration with points left to a node of its tier on the Ray cluster at
    `address`; gather each as it finishes. Returns the failures: job number -> why."""
    try:
        import ray
    except ImportError:
        raise ClusterError("hydra/launcher=ray needs Ray: pip install 'bench[cluster]'") from None
    todo = []
    for configuration in configurations:
        if gathered(configuration.folder) and not has_points_left(configuration):
            log.info(f"{configuration.shown()}: gathered before, every point measured: skipped")
        else:
            todo.append(configuration)
    if not todo:
        return {}
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as exc:
        raise ClusterError(
            f"no Ray cluster at hydra.launcher.address={address}: {exc}; start one "
            "(ray start --head ...) or name its address"
        ) from None
    try:
        check_cluster(ray.cluster_resources(), todo)
        return _gather(ray, todo, retries, poll_s)
    finally:
        ray.shutdown()


def _gather(ray, todo: Sequence[Configuration], retries: int, poll_s: float) -> dict[int, str]:
    task = ray.remote(_node_run)
    running = {}
    for configuration in todo:
        previous = {}
        if gathered(configuration.folder):
            previous = {RESULTS_FILE: (configuration.folder / RESULTS_FILE).read_bytes()}
        ref = task.options(
            num_cpus=0,
            resources=resources(configuration),
            max_retries=retries,
            retry_exceptions=False,
        ).remote(list(configuration.overrides), previous)
        running[ref] = configuration
        log.info(f"{configuration.shown()}: sent to a node of tier {configuration.tier or 'any'}")
    failures: dict[int, str] = {}
    while running:
        done, _ = ray.wait(list(running), num_returns=1, timeout=poll_s)
        for ref in done:
            configuration = running.pop(ref)
            why = _gathered_or_why(ray, ref, configuration, retries)
            if why:
                failures[configuration.num] = why
                _record_failure(configuration, why)
        if not done:
            for ref, why in _stranded(ray, running).items():
                ray.cancel(ref, force=True)
                configuration = running.pop(ref)
                failures[configuration.num] = why
                _record_failure(configuration, why)
    return failures


def _gathered_or_why(ray, ref, configuration: Configuration, retries: int) -> str:
    """Gather a finished configuration into its job folder; "" where it measured, else why not."""
    try:
        result: NodeResult = ray.get(ref)
    except ray.exceptions.RayError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return (
            f"the node running it was lost ({type(exc).__name__}: {first}), "
            f"after {retries} retr{'y' if retries == 1 else 'ies'} on another node of its tier"
        )
    unpack(result.shard, configuration.folder)
    (configuration.folder / FAILURE_FILE).unlink(missing_ok=True)
    log.info(f"{configuration.shown()}: gathered from node {result.node}")
    if result.returncode != 0:
        return f"bench exited {result.returncode} on node {result.node}: {result.output_tail}"
    return ""


def _stranded(ray, running: dict) -> dict:
    """Configurations waiting for a tier no live node offers any more: each -> why."""
    offered = ray.cluster_resources()
    stranded = {}
    for ref, configuration in running.items():
        missing = [name for name in resources(configuration) if name not in offered]
        if missing:
            stranded[ref] = (
                f"no live node of the Ray cluster offers {', '.join(missing)} any more (its "
                "nodes left the cluster, one maybe mid-configuration)"
            )
    return stranded


def _record_failure(configuration: Configuration, why: str) -> None:
    configuration.folder.mkdir(parents=True, exist_ok=True)
    (configuration.folder / FAILURE_FILE).write_text(
        f"{' '.join(configuration.overrides)}\n{why}\n"
    )
    log.error(f"{configuration.shown()}: FAILED: {why}")


__all__ = ["ClusterError", "check_cluster", "resources", "run_sweep"]
