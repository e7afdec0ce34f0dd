"""`python -m bench.compare BASELINE CANDIDATE [gate.FIELD=VALUE ...]`: the same command as
`bench-compare` (see `bench.cli.compare_main`)."""

import sys

from bench.cli import compare_main

if __name__ == "__main__":
    sys.exit(compare_main(prog="python -m bench.compare"))
