"""Kubernetes manifests for a sizing: Deployment, Service, Ingress and HorizontalPodAutoscaler.

Plain dicts, which the plan store dumps as YAML. Requests equal limits for CPU, so each replica
gets whole cores and the CFS quota never throttles it mid-request (a 50% quota turned 1 ms of
work into a 52 ms p99 in this project's measurements); memory requests cover the measured peak
with a margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MEMORY_REQUEST_MARGIN = 1.25
MEMORY_LIMIT_MARGIN = 1.5
# The container's and the Service's port, by name: the worker serves the Open Inference
# Protocol and its Prometheus metrics (/metrics) on it, and the plan's ServiceMonitor scrapes it.
METRICS_PORT_NAME = "http"


@dataclass(frozen=True)
class Deployment:
    """What the manifests say, in the planner's terms."""

    name: str
    image: str
    replicas: int  # replicas needed for the peak, headroom included
    min_replicas: int  # replicas for the peak without headroom
    max_replicas: int  # replicas the planned servers can hold
    cpu_per_replica: int  # cores (= the worker's intra-op threads)
    rss_mb_per_replica: float
    target_cpu_pct: int
    port: int = 8000
    node_selector: dict[str, str] | None = None


def _mebibytes(mb: float) -> str:
    return f"{math.ceil(mb)}Mi"


def manifests(d: Deployment) -> dict[str, dict]:
    """file name -> manifest."""
    labels = {"app": d.name}
    resources = {
        "requests": {
            "cpu": str(d.cpu_per_replica),
            "memory": _mebibytes(d.rss_mb_per_replica * MEMORY_REQUEST_MARGIN),
        },
        "limits": {
            "cpu": str(d.cpu_per_replica),
            "memory": _mebibytes(d.rss_mb_per_replica * MEMORY_LIMIT_MARGIN),
        },
    }
    probe = {"httpGet": {"path": "/v2/health/ready", "port": d.port}, "periodSeconds": 5}
    pod_spec: dict = {
        "containers": [
            {
                "name": "model",
                "image": d.image,
                "ports": [{"name": METRICS_PORT_NAME, "containerPort": d.port}],
                "resources": resources,
                "readinessProbe": probe,
                "livenessProbe": {**probe, "httpGet": {"path": "/v2/health/live", "port": d.port}},
            }
        ]
    }
    if d.node_selector:
        pod_spec["nodeSelector"] = d.node_selector
    return {
        "deployment.yaml": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": d.name, "labels": labels},
            "spec": {
                "replicas": d.replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        },
        "service.yaml": {
            "apiVersion": "v1",
            "kind": "Service",
            # Labelled: the plan's ServiceMonitor selects the Service by them.
            "metadata": {"name": d.name, "labels": labels},
            "spec": {
                "type": "LoadBalancer",
                "selector": labels,
                "ports": [{"name": METRICS_PORT_NAME, "port": 80, "targetPort": d.port}],
            },
        },
        "ingress.yaml": {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": d.name},
            "spec": {
                "ingressClassName": "nginx",
                "rules": [
                    {
                        "http": {
                            "paths": [
                                {
                                    "path": "/v2",
                                    "pathType": "Prefix",
                                    "backend": {
                                        "service": {"name": d.name, "port": {"number": 80}}
                                    },
                                }
                            ]
                        }
                    }
                ],
            },
        },
        "hpa.yaml": {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": d.name},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": d.name},
                "minReplicas": d.min_replicas,
                "maxReplicas": d.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "averageUtilization": d.target_cpu_pct,
                            },
                        },
                    }
                ],
            },
        },
    }
