"""A real multi-node Ray cluster on this machine, on loopback only, for the cluster tests and
benchmark: run it in a network namespace of its own, where 127.0.0.1 is the only address (Ray
binds the machine's outward address otherwise, whatever --node-ip-address says):

    unshare -n sh -c 'ip link set lo up; exec python tests/ray_cluster.py TIER [TIER ...]'

A head (no measuring slot) and one worker node per TIER, each offering `bench_slot: 1` and
`tier:TIER: 1`. Prints one JSON line: {"address", "nodes": [{"tier", "node_id",
"raylet_pid"}]}; then each line `add TIER` on stdin adds a node and prints its JSON line; at
the end of stdin the cluster is shut down.
"""

from __future__ import annotations

import json
import sys

from ray.cluster_utils import Cluster

# A lost node noticed within about a second (Ray's default takes tens), so a test is short.
FAST_HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 200,
    "health_check_failure_threshold": 3,
}
_NODE = {"node_ip_address": "127.0.0.1", "object_store_memory": 80 * 2**20}


def add(cluster: Cluster, tier: str) -> dict:
    # Waits for this node to join (not `wait_for_nodes`, which counts a killed node as due).
    node = cluster.add_node(num_cpus=1, resources={"bench_slot": 1, f"tier:{tier}": 1}, **_NODE)
    raylet = node.all_processes["raylet"][0].process
    return {"tier": tier, "node_id": node.node_id, "raylet_pid": raylet.pid}


def main(tiers: list[str]) -> None:
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "_system_config": FAST_HEALTH_CHECKS,
            **_NODE,
        },
    )
    try:
        nodes = [add(cluster, tier) for tier in tiers]
        print(json.dumps({"address": cluster.address, "nodes": nodes}), flush=True)
        for line in sys.stdin:
            command, _, tier = line.strip().partition(" ")
            if command == "add" and tier:
                print(json.dumps(add(cluster, tier)), flush=True)
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
