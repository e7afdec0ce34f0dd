"""`python -m bench.cluster.job_index CONFIGURATIONS SHARDS`: one index of a sweep's Indexed
Job (bench.cluster.k8s_jobs) measures its configuration, `CONFIGURATIONS[$JOB_COMPLETION_INDEX]`
(a JSON list of {"num", "overrides"}), with `python -m bench`, and writes its run folder as the
shard `SHARDS/<num>/`. A retried index resumes from the points that shard holds. Exits with
bench's status."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from bench.cluster.node_run import measure_configuration
from bench.cluster.shards import gathered, unpack
from bench.results import RESULTS_FILE


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.cluster.job_index CONFIGURATIONS SHARDS", file=sys.stderr)
        return 2
    configurations = json.loads(Path(argv[0]).read_text())
    index = int(os.environ["JOB_COMPLETION_INDEX"])
    configuration = configurations[index]
    shard = Path(argv[1]) / str(configuration["num"])
    previous = {RESULTS_FILE: (shard / RESULTS_FILE).read_bytes()} if gathered(shard) else {}
    node = os.environ.get("NODE_NAME") or socket.gethostname()
    result = measure_configuration(configuration["overrides"], previous, node, os.environ)
    unpack(result.shard, shard)
    print(result.output_tail)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
