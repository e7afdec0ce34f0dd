"""`python -m reports FOLDER...`: the same command as `bench-report` (see
`bench.cli.report_main`)."""

import sys

from bench.cli import report_main

if __name__ == "__main__":
    sys.exit(report_main(prog="python -m reports"))
