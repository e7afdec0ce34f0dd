"""`python -m reports PATH`: re-render a run or sweep folder's report from its stored results."""

from __future__ import annotations

import argparse
import sys

from reports.build import load_results, report_folder, write_report


def main(argv: list[str] | None = None) -> int:
    """Build the report and print its path; a path without readable results exits 2."""
    parser = argparse.ArgumentParser(
        prog="python -m reports",
        description="Render report.html from the results.parquet files in or below a folder.",
    )
    parser.add_argument("path", help="a run folder, or a sweep folder holding run folders")
    args = parser.parse_args(argv)
    try:
        df = load_results(args.path)
    except (FileNotFoundError, ValueError) as exc:
        # Both name the path (or the file with an unknown schema); a traceback would bury it.
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(write_report(df, report_folder(args.path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
