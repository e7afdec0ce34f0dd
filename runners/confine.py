"""Start a command confined: join cgroups, pin it to cores, cap its address space, then exec.

    python -I -S runners/confine.py [--join PROCS_FILE]... [--cores 0,1] [--address-space-mb N]
        -- COMMAND [ARG]...

Run as a file, standard library only: importing the `runners` package would load the harness's
config machinery (hundreds of milliseconds) in front of every worker. The command replaces this
process (same pid, process group and stdin pipe), so none of its code runs outside the limits:
a parent that moved the worker after spawning it would let its first pages be charged to the
parent's memory cgroup, and its first threads escape the pinning.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("confine: no command after --", file=sys.stderr)
        return 2
    split = argv.index("--")
    args, command = _options(argv[:split]), argv[split + 1 :]
    for procs in args.join:
        try:
            with open(procs, "w") as file:
                file.write(str(os.getpid()))
        except OSError as exc:
            print(f"confine: cannot join the cgroup {procs}: {exc}", file=sys.stderr)
            return 125
    if args.cores:
        os.sched_setaffinity(0, [int(core) for core in args.cores.split(",")])
    if args.address_space_mb:
        limit = args.address_space_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        os.execv(command[0], command)
    except OSError as exc:
        print(f"confine: cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127


def _options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="confine.py", description=__doc__)
    parser.add_argument("--join", action="append", default=[], help="a cgroup.procs file")
    parser.add_argument("--cores", default="", help="CPUs to run on, comma-separated")
    parser.add_argument("--address-space-mb", type=int, default=0, help="RLIMIT_AS, in MiB")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
