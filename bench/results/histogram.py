"""The latency histogram codec of the results: HdrHistogram, stored base64-encoded in a row's
`*_hist` columns, so points, processes and hosts can be merged later and their percentiles
recomputed exactly as measured. Readers (reports, notebooks) decode here, without the load
driver."""

from __future__ import annotations

import base64

import numpy as np
from hdrh.histogram import HdrHistogram

PERCENTILE_METHOD = (
    "nearest rank, one rule for every percentile: pX = the value of rank max(1, round(X% of n)) "
    "among the n values sorted (HdrHistogram's rule). Latencies (latency_*, sent_latency_*) are "
    "read from an HdrHistogram (3 significant digits, microsecond units: the bucket's highest "
    "equivalent value, error <= 0.1%); the server's queue and compute times, send lateness and "
    "the planner's queueing simulation from the exact values"
)


def percentile(values: np.ndarray, q: float) -> float:
    """The q-th percentile (0-100) of `values` by the rule of PERCENTILE_METHOD, exactly as
    HdrHistogram ranks them but without its buckets; NaN when empty."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return float("nan")
    rank = max(1, int(q / 100.0 * len(values) + 0.5))
    return float(np.partition(values, rank - 1)[rank - 1])


def encode(hist: HdrHistogram) -> str:
    """A histogram as the text a results column stores."""
    return base64.b64encode(hist.encode()).decode("ascii")


def decode(text: str) -> HdrHistogram:
    """The histogram a results column stores."""
    return HdrHistogram.decode(base64.b64decode(text))
