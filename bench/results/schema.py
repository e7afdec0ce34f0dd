"""The results schema: one row per load point. Version 1.

The contract's columns below are always present; more are added freely (config fields as
`<group>.<field>`, sampler readings, runner facts). Renaming one of these is a new version,
with a reader for the old one.
"""

SCHEMA_VERSION = 1

CONTRACT_COLUMNS = (
    "schema_version",
    "run_id",
    "model",
    "backend",
    "optimization",
    "strategy",
    "scenario",
    "batch_size",
    "concurrency",
    "target_qps",
    "achieved_qps",
    "requests",
    "errors",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_p999_ms",
    "latency_max_ms",
    "sent_latency_p99_ms",
    "late_send_fraction",
    "valid",
    "invalid_reasons",
    "cpu_util_pct",
    "rss_peak_mb",
    "host_cpu_model",
    "host_cores",
    "host_gpu",
)


def missing_columns(columns) -> list[str]:
    """Contract columns absent from `columns`."""
    present = set(columns)
    return [c for c in CONTRACT_COLUMNS if c not in present]
