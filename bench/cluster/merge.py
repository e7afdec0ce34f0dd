"""`python -m bench.cluster.merge SHARDS SWEEP`: gather the shards a sweep's Kubernetes Jobs
wrote (`SHARDS/<num>/`, copied from their volume) into the sweep folder, as the Ray launcher
gathers its nodes' (bench.cluster.shards); `bench-report SWEEP` then reads them as one."""

from __future__ import annotations

import argparse
import sys

from bench.cluster.shards import merge


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster.merge",
        description="Gather the shards of a sweep (SHARDS/<num>/, each a run folder) into the "
        "sweep folder SWEEP/<num>/.",
    )
    parser.add_argument("shards", metavar="SHARDS")
    parser.add_argument("sweep", metavar="SWEEP")
    args = parser.parse_args(argv)
    try:
        written = merge(args.shards, args.sweep)
    except FileNotFoundError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    for folder in written:
        print(f"gathered: {folder}")
    print(f"{len(written)} shards in {args.sweep}; read them as one: bench-report {args.sweep}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
