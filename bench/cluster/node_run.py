"""The node's side of a cluster sweep: one configuration measured by `python -m bench` on this
machine, as a user would run it here, in a folder of its own; its run folder comes back as a
shard. A fresh process per configuration, as locally, so nothing of one configuration's
measuring (threads, caches, servers) is left in the next's.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.cluster.shards import Shard, pack, unpack

# What the node said while measuring, kept in the gathered folder beside the results.
NODE_LOG = "node.log"
_PR_SET_PDEATHSIG = 1
_TAIL = 2000


@dataclass(frozen=True)
class NodeResult:
    """A configuration as a node measured it: its run folder, the exit status of `bench`, the
    node, and the end of what `bench` printed."""

    shard: Shard
    returncode: int
    node: str
    output_tail: str


def _die_with_parent() -> None:
    """In the child: SIGTERM when the process that started it dies (a node's raylet killed
    takes its workers with it; the measurement must not run on, unseen): `bench` then stops its
    servers, records the point in flight as failed, and exits."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def measure_configuration(
    overrides: Sequence[str],
    previous: Shard,
    node: str,
    env: Mapping[str, str],
    scratch: str | None = None,
) -> NodeResult:
    """Run `python -m bench OVERRIDES node=NODE` in a new folder under `scratch` (the system's
    temporary folder by default) holding `previous` (what was gathered of this configuration
    before: its points are not measured again); return that folder as a shard. `env`: the
    environment `bench` runs in (the node's own, not the engine's worker's)."""
    with tempfile.TemporaryDirectory(prefix="bench-shard-", dir=scratch) as folder:
        unpack(previous, folder)
        command = [
            sys.executable,
            "-m",
            "bench",
            *overrides,
            f"node='{node}'",
            f"hydra.run.dir={folder}",
        ]
        log = Path(folder) / NODE_LOG
        with open(log, "wb") as out:
            proc = subprocess.run(
                command,
                cwd=folder,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        tail = log.read_bytes()[-_TAIL:].decode(errors="replace")
        return NodeResult(pack(folder), proc.returncode, node, tail)
