"""A configuration's run folder as a shard: measured on one machine, gathered into the sweep
folder on another. The one place that gathers, whichever engine ran the shard (a Ray task's
answer, a Kubernetes Job's folder on a shared volume).

A shard is its files by relative path. Gathering writes each one atomically (a temporary name
beside it, then a rename) and `results.parquet` last, so a folder whose `results.parquet` is
there holds every request log its rows name: a crash while gathering leaves the previous
`results.parquet` (or none), and the configuration is sent again by the next run of the sweep.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from bench.results import RESULTS_FILE

Shard = dict[str, bytes]


def pack(folder: str | os.PathLike) -> Shard:
    """Every file under `folder`, by its path relative to it (POSIX), less temporary files a
    writer left (`.NAME.*.tmp`)."""
    root = Path(folder)
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not (path.name.startswith(".") and path.name.endswith(".tmp"))
    }


def _checked(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"shard file {name!r}: not a path inside the shard")
    return path


def unpack(shard: Mapping[str, bytes], folder: str | os.PathLike) -> Path:
    """Write `shard` into `folder` (made if missing), over files of the same names; files of
    the folder the shard does not hold stay. Returns the folder."""
    root = Path(folder)
    names = sorted(shard, key=lambda name: name == RESULTS_FILE)  # results.parquet last
    for name in names:
        target = root.joinpath(*_checked(name).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(shard[name])
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return root


def gathered(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a gathered shard (its `results.parquet`)."""
    return (Path(folder) / RESULTS_FILE).is_file()


def merge(shards: str | os.PathLike, sweep_dir: str | os.PathLike) -> list[Path]:
    """Gather every shard under `shards` (each folder holding a `results.parquet`, at any
    depth) into `sweep_dir`, at the same relative path; returns the folders written."""
    root = Path(shards)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such shards folder")
    written = []
    for results in sorted(root.rglob(RESULTS_FILE)):
        relative = results.parent.relative_to(root)
        written.append(unpack(pack(results.parent), Path(sweep_dir) / relative))
    return written
