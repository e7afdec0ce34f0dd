"""Monitoring for a sizing: Prometheus alerting rules derived from the plan's SLO and target, the
Prometheus Operator's `ServiceMonitor` and `PrometheusRule`, and a Grafana dashboard.

The alerts are the Google SRE workbook's multiwindow, multi-burn-rate alerts ("Alerting on
SLOs"): the plan's percentile is the objective (p99 under 100 ms: 99% of requests served under
100 ms, so 1% of them may be slower, and 1% may fail), and an alert fires when the budget burns
fast over a long window and is still burning over a short one, so it resets soon after the
burning stops. A page at 14.4x the budget's rate over 1h and 5m (2% of a 30-day budget in an
hour) or 6x over 6h and 30m (5% in six hours); a ticket at 3x over 1d and 2h, or 1x over 3d and
6h. A pair whose threshold would be a ratio of 1 or more (14.4x the budget of a p90 target) can
never fire, and is left out. Saturation: the load per replica up passes the capacity the plan
assumed for one replica, or the load passes the peak it was sized for.

Every query selects the served model (`model` label, `bench.monitoring`) scraped by the job of
the Deployment's Service (the Prometheus Operator names the job after the Service), so two
deployments of one model in a cluster keep their own alerts.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import monitoring as m
from bench.capacity.manifests import METRICS_PORT_NAME, Deployment

OBJECTIVES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p999": 0.999}
# (severity, long window, short window, burn rate): the SRE workbook's, table 5-8.
BURN_RATES = (
    ("page", "1h", "5m", 14.4),
    ("page", "6h", "30m", 6.0),
    ("ticket", "1d", "2h", 3.0),
    ("ticket", "3d", "6h", 1.0),
)
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
SCRAPE_INTERVAL = "15s"
# The load must stay past a saturation threshold this long before it is said.
SATURATION_FOR = "10m"

ALERTS = "alerts.yaml"
PROMETHEUS_RULE = "prometheusrule.yaml"
SERVICE_MONITOR = "servicemonitor.yaml"
DASHBOARD = "dashboard.json"


@dataclass(frozen=True)
class Objective:
    """What the deployment is held to, in the plan's terms."""

    model: str  # the served model's name: the metrics' `model` label
    percentile: str  # "p99"
    slo_ms: float
    peak_qps: float  # the load planned for, without headroom
    capacity_qps_per_replica: float  # what the plan assumed one replica sustains within the SLO

    @property
    def budget(self) -> float:
        """The share of requests that may miss the SLO (and, apart, that may fail)."""
        return 1.0 - OBJECTIVES[self.percentile]

    @property
    def slo_s(self) -> float:
        return self.slo_ms / 1e3


def _selector(d: Deployment, o: Objective, **more: str) -> str:
    labels = {"job": d.name, m.MODEL_LABEL: o.model, **more}
    return "{" + ",".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


def _record(kind: str, window: str) -> str:
    return f"model:{m.PREFIX}_requests_{kind}:ratio_rate{window}"


def recording_rules(d: Deployment, o: Objective) -> list[dict]:
    """The two SLIs over every window the alerts use: the share of requests served slower than
    the SLO, and the share that failed in the model (a malformed request is the client's)."""
    every = _selector(d, o)
    fast = _selector(d, o, le=m.bucket_label(o.slo_s))
    failed = _selector(d, o, reason=m.MODEL_ERROR)
    rules = []
    for window in WINDOWS:
        rules.append(
            {
                "record": _record("slow", window),
                "expr": (
                    f"1 - sum(rate({m.LATENCY}_bucket{fast}[{window}])) "
                    f"/ sum(rate({m.LATENCY}_count{every}[{window}]))"
                ),
                "labels": {"job": d.name, m.MODEL_LABEL: o.model},
            }
        )
        rules.append(
            {
                "record": _record("failed", window),
                "expr": (
                    f"sum(rate({m.FAILURES}{failed}[{window}])) "
                    f"/ sum(rate({m.REQUESTS}{every}[{window}]))"
                ),
                "labels": {"job": d.name, m.MODEL_LABEL: o.model},
            }
        )
    return rules


def burn_rate_alerts(d: Deployment, o: Objective) -> list[dict]:
    """Per SLI and severity, one alert over that severity's window pairs."""
    which = f'{{job="{d.name}",{m.MODEL_LABEL}="{o.model}"}}'
    slis = {
        "Latency": (
            "slow",
            f"requests served slower than {o.slo_ms:g} ms",
            f"{o.percentile} under {o.slo_ms:g} ms",
        ),
        "Errors": (
            "failed",
            "requests failed by the model",
            f"{_percent(1 - o.budget)} of requests served without a model error",
        ),
    }
    alerts = []
    for sli, (kind, what, objective) in slis.items():
        for severity in ("page", "ticket"):
            pairs = [
                (long, short, rate)
                for level, long, short, rate in BURN_RATES
                if level == severity and rate * o.budget < 1
            ]
            if not pairs:
                continue
            clauses = [
                f"({_record(kind, long)}{which} > {rate * o.budget:.6g} "
                f"and {_record(kind, short)}{which} > {rate * o.budget:.6g})"
                for long, short, rate in pairs
            ]
            said = "; or ".join(
                f"{rate:g}x over {long} and {short} (over {_percent(rate * o.budget)} of requests)"
                for long, short, rate in pairs
            )
            alerts.append(
                {
                    "alert": f"{_camel(d.name)}{sli}BudgetBurn",
                    "expr": " or ".join(clauses),
                    "labels": {"severity": severity},
                    "annotations": {
                        "summary": f"{o.model}: the error budget of '{objective}' burns fast",
                        "description": (
                            f"The share of {what} passed {said}; {_percent(o.budget)} may. At "
                            "this rate the error budget runs out early."
                        ),
                    },
                }
            )
    return alerts


def saturation_alerts(d: Deployment, o: Objective) -> list[dict]:
    every = _selector(d, o)
    by = f"by (job, {m.MODEL_LABEL})"  # kept on the alert, for routing
    rate = f"sum {by} (rate({m.REQUESTS}{every}[5m]))"
    replicas = f"count {by} ({m.MODEL_INFO}{every})"
    name = _camel(d.name)
    return [
        {
            "alert": f"{name}Saturated",
            "expr": f"{rate} / {replicas} > {o.capacity_qps_per_replica:.6g}",
            "for": SATURATION_FOR,
            "labels": {"severity": "page"},
            "annotations": {
                "summary": f"{o.model}: each replica takes more than the plan assumed it can",
                "description": (
                    f"Over {o.capacity_qps_per_replica:.4g} requests/s per replica up, the most "
                    f"one replica sustains with {o.percentile} under {o.slo_ms:g} ms in the "
                    "plan: add replicas (or servers) before the latency SLO goes."
                ),
            },
        },
        {
            "alert": f"{name}AbovePlannedPeak",
            "expr": f"{rate} > {o.peak_qps:.6g}",
            "for": SATURATION_FOR,
            "labels": {"severity": "ticket"},
            "annotations": {
                "summary": f"{o.model}: the load is past the peak the plan sized for",
                "description": (
                    f"Over {o.peak_qps:g} requests/s: the deployment runs on its headroom. "
                    "Plan again for the new peak (bench-plan RUN plan.peak_qps=...)."
                ),
            },
        },
    ]


def rule_groups(d: Deployment, o: Objective) -> list[dict]:
    return [
        {"name": f"{d.name}-slis", "rules": recording_rules(d, o)},
        {
            "name": f"{d.name}-alerts",
            "rules": burn_rate_alerts(d, o) + saturation_alerts(d, o),
        },
    ]


def monitoring(d: Deployment, o: Objective) -> dict[str, dict]:
    """File name -> document: the rules as a Prometheus rule file (`rule_files:`), the same as a
    PrometheusRule, the ServiceMonitor scraping the Service's pods, the Grafana dashboard."""
    groups = rule_groups(d, o)
    labels = {"app": d.name}
    return {
        ALERTS: {"groups": groups},
        PROMETHEUS_RULE: {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": d.name, "labels": labels},
            "spec": {"groups": groups},
        },
        SERVICE_MONITOR: service_monitor(d),
        DASHBOARD: dashboard(d, o),
    }


def service_monitor(d: Deployment) -> dict:
    """The Prometheus Operator's ServiceMonitor scraping the worker's `/metrics` on the pods of
    the Deployment's Service (each series labelled with its namespace and pod)."""
    labels = {"app": d.name}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": d.name, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "endpoints": [
                {"port": METRICS_PORT_NAME, "path": "/metrics", "interval": SCRAPE_INTERVAL}
            ],
        },
    }


def _percent(share: float) -> str:
    return f"{share * 100:.4g}%"


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


# --- the dashboard ------------------------------------------------------------------------------

_RATE = "$__rate_interval"  # Grafana's: at least four scrape intervals


def dashboard(d: Deployment, o: Objective) -> dict:
    """A Grafana dashboard (JSON model) of what an on-call person looks at first: the load
    against the plan, latency percentiles against the SLO, failures against their budget, the
    budget's burn rate, batch sizes, queue against compute, and the replicas up."""
    sel = _selector(d, o)
    requests = f"sum(rate({m.REQUESTS}{sel}[{_RATE}]))"
    replicas = f"count({m.MODEL_INFO}{sel})"

    def quantile(q: float) -> str:
        return f"histogram_quantile({q}, sum by (le) (rate({m.LATENCY}_bucket{sel}[{_RATE}])))"

    def mean(name: str) -> str:
        return f"sum(rate({name}_sum{sel}[{_RATE}])) / sum(rate({name}_count{sel}[{_RATE}]))"

    panels = [
        _panel(
            "Requests/s: load against the plan",
            "reqps",
            [
                (requests, "served"),
                (f"{replicas} * {o.capacity_qps_per_replica:.6g}", "capacity of the replicas up"),
                (f"vector({o.peak_qps:.6g})", "planned peak"),
            ],
        ),
        _panel(
            f"Latency against the SLO ({o.percentile} under {o.slo_ms:g} ms)",
            "s",
            [
                (quantile(0.5), "p50"),
                (quantile(0.9), "p90"),
                (quantile(0.99), "p99"),
                (quantile(0.999), "p99.9"),
                (f"vector({o.slo_s:.6g})", "SLO"),
            ],
        ),
        _panel(
            "Failed requests (share)",
            "percentunit",
            [
                (
                    f"sum by (reason) (rate({m.FAILURES}{sel}[{_RATE}])) / scalar({requests})",
                    "{{reason}}",
                ),
                (f"vector({o.budget:.6g})", "budget (model_error)"),
            ],
        ),
        _panel(
            "Error budget burn rate, 1h (page above 14.4)",
            "none",
            [
                (f'{_record("slow", "1h")}{{job="{d.name}"}} / {o.budget:.6g}', "latency"),
                (f'{_record("failed", "1h")}{{job="{d.name}"}} / {o.budget:.6g}', "errors"),
                ("vector(14.4)", "page"),
            ],
        ),
        _panel(
            "Batch size (items per predictor call)",
            "none",
            [
                (mean(m.BATCH_SIZE), "mean"),
                (
                    f"histogram_quantile(0.99, sum by (le) "
                    f"(rate({m.BATCH_SIZE}_bucket{sel}[{_RATE}])))",
                    "p99",
                ),
            ],
        ),
        _panel(
            "Server time per request: queue and compute (mean)",
            "s",
            [(mean(m.QUEUE), "queue"), (mean(m.COMPUTE), "compute"), (mean(m.LATENCY), "total")],
        ),
        _panel(
            "Replicas up and requests in flight",
            "none",
            [
                (replicas, "replicas up"),
                (f"vector({d.min_replicas})", "replicas for the peak"),
                (f"sum({m.IN_FLIGHT}{sel})", "in flight"),
            ],
        ),
    ]
    for index, panel in enumerate(panels):
        panel["id"] = index + 1
        panel["gridPos"] = {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)}
    return {
        "title": f"{o.model} ({d.name})",
        "uid": f"bench-{d.name}"[:40],
        "tags": ["bench", o.model],
        "timezone": "browser",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                }
            ]
        },
        "panels": panels,
    }


def _panel(title: str, unit: str, queries: list[tuple[str, str]]) -> dict:
    source = {"type": "prometheus", "uid": "${datasource}"}
    return {
        "type": "timeseries",
        "title": title,
        "datasource": source,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": source, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(queries)
        ],
    }
