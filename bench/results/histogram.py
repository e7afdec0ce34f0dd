"""The latency histogram codec of the results: HdrHistogram, stored base64-encoded in a row's
`*_hist` columns, so points, processes and hosts can be merged later and their percentiles
recomputed exactly as measured. Readers (reports, notebooks) decode here, without the load
driver."""

from __future__ import annotations

import base64

from hdrh.histogram import HdrHistogram

PERCENTILE_METHOD = (
    "HdrHistogram, 3 significant digits, microsecond units: pX = the smallest recorded value "
    "with at least X% of values at or below it (bucket's highest equivalent value, error <= 0.1%)"
)


def encode(hist: HdrHistogram) -> str:
    """A histogram as the text a results column stores."""
    return base64.b64encode(hist.encode()).decode("ascii")


def decode(text: str) -> HdrHistogram:
    """The histogram a results column stores."""
    return HdrHistogram.decode(base64.b64decode(text))
