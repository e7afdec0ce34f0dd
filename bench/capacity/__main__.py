"""`python -m bench.capacity RUN [overrides]`: the same command as `bench-plan` (see
`bench.cli.plan_main`)."""

import sys

from bench.cli import plan_main

if __name__ == "__main__":
    sys.exit(plan_main(prog="python -m bench.capacity"))
