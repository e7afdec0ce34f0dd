"""`python -m bench.capacity FOLDER [overrides]`: plan again from stored results, for another
target or catalog, without measuring: e.g. `plan.peak_qps=800 plan.slo_ms=50`."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_dir

from bench.capacity.plan import write_plan
from bench.config import ConfigError, register_configs, validate

# The Hydra tree, shipped in the package (bench/conf).
CONF_DIR = Path(resources.files("bench.conf"))


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    folder, overrides = Path(argv[0]), argv[1:]
    if not folder.exists():
        print(f"{folder}: no such results folder", file=sys.stderr)
        return 2
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    try:
        validate(cfg)
        plan_dir = write_plan(folder, cfg)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((plan_dir / "recommendation.txt").read_text().strip())
    print(f"plan: {plan_dir}")
    # The report shows the plan, so it is rendered again with the new one.
    from reports import build_report

    print(f"report: {build_report(folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
