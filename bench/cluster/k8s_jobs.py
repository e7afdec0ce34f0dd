"""A sweep as Kubernetes Jobs: one Indexed Job per tier, each index one configuration of that
tier, measured by `python -m bench.cluster.job_index` (the same `python -m bench` a Ray node
runs) in the harness's image, its run folder written as a shard to a shared volume (a
PersistentVolumeClaim); `python -m bench.cluster.merge` then gathers the shards into one sweep
folder, with the same code as the Ray launcher (`bench.cluster.shards`).

A tier is a node pool: its Job's pods carry a nodeSelector `<tier_label>: <tier>` (label your
nodes so); a configuration with no tier runs on any node. Every pod of every sweep's Job
repels the others from its node (required pod anti-affinity on the host name), so a node
measures one configuration at a time, as a Ray node with one `bench_slot` does. A pod that fails
(its node lost) is retried once more per index (`backoffLimitPerIndex`), on whatever node of
the pool the scheduler picks, and resumes from the points its shard already holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from bench.capacity.manifests import pinned
from bench.cluster.configuration import Configuration

# Where a pod finds the sweep's configurations (a ConfigMap) and the shared volume.
CONFIGURATIONS_MOUNT = "/etc/bench-sweep"
SHARDS_MOUNT = "/shards"
# The label every measuring pod carries, which its anti-affinity matches.
POD_LABEL = {"app.kubernetes.io/name": "bench-sweep"}


def slug(text: str) -> str:
    """`text` as a DNS-1123 label (a Job's or a file's name part): lowercase, digits, '-'."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:40].strip("-") or "any"


def by_tier(configurations: Sequence[Configuration]) -> dict[str, list[Configuration]]:
    """The configurations grouped by tier ("" = any node), in sweep order."""
    groups: dict[str, list[Configuration]] = {}
    for configuration in configurations:
        groups.setdefault(configuration.tier, []).append(configuration)
    return groups


def sweep_manifests(
    name: str,
    configurations: Sequence[Configuration],
    image: str,
    claim: str,
    storage: str,
    tier_label: str,
    parallelism: int,
    retries: int,
) -> dict[str, dict]:
    """file name -> manifest: the shards' PersistentVolumeClaim, the ConfigMap of
    configurations, and one Indexed Job per tier."""
    name = slug(name)
    groups = by_tier(configurations)
    config_map = f"{name}-configurations"
    found = {
        "pvc.yaml": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim},
            "spec": {
                # Pods on many nodes write their shards at once.
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": storage}},
            },
        },
        "configurations.yaml": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": config_map},
            "data": {
                f"{slug(tier)}.json": json.dumps(
                    [{"num": c.num, "overrides": list(c.overrides)} for c in group]
                )
                for tier, group in groups.items()
            },
        },
    }
    for tier, group in groups.items():
        found[f"job-{slug(tier)}.yaml"] = _job(
            f"{name}-{slug(tier)}", tier, len(group), image, claim, config_map, tier_label,
            parallelism, retries,
        )  # fmt: skip
    return found


def _job(
    job: str,
    tier: str,
    count: int,
    image: str,
    claim: str,
    config_map: str,
    tier_label: str,
    parallelism: int,
    retries: int,
) -> dict:
    pod: dict = {
        "restartPolicy": "Never",
        # The image runs as uid 10001 (bench/capacity/image.py); the volume is made writable
        # for it.
        "securityContext": {"fsGroup": 10001},
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": dict(POD_LABEL)},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        },
        "containers": [
            {
                "name": "bench",
                "image": pinned(image),
                "command": [
                    "python",
                    "-m",
                    "bench.cluster.job_index",
                    f"{CONFIGURATIONS_MOUNT}/{slug(tier)}.json",
                    SHARDS_MOUNT,
                ],
                # Rows name the node that measured them (`node`).
                "env": [
                    {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
                ],
                "volumeMounts": [
                    {"name": "shards", "mountPath": SHARDS_MOUNT},
                    {"name": "configurations", "mountPath": CONFIGURATIONS_MOUNT, "readOnly": True},
                ],
            }
        ],
        "volumes": [
            {"name": "shards", "persistentVolumeClaim": {"claimName": claim}},
            {"name": "configurations", "configMap": {"name": config_map}},
        ],
    }
    if tier:
        pod["nodeSelector"] = {tier_label: tier}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job, "labels": {**POD_LABEL, "bench/tier": slug(tier)}},
        "spec": {
            "completionMode": "Indexed",
            "completions": count,
            "parallelism": min(parallelism, count),
            "backoffLimitPerIndex": retries,
            "template": {"metadata": {"labels": dict(POD_LABEL)}, "spec": pod},
        },
    }
