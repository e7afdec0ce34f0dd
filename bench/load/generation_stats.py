"""Statistics of a generative load point, from its request log: pure functions, no clocks.

Per request (`request_metrics`): time to first token (TTFT, from the intended send, like every
`latency_*`: a backlog in front of the server counts), every inter-token gap (ITL: between
consecutive chunks carrying text), time per output token (TPOT: the mean gap after the first
token, (last - first) / (output tokens - 1), vLLM's definition), end-to-end latency (the point's
`latency_*`), input and output tokens. Per point: their percentiles by the project's one rule
(`bench.results.histogram.percentile`, nearest rank, on the exact values), output tokens per
second (the tokens of the requests completed in the measured window, over the window, as
`achieved_qps` counts requests), each request's own output rate, and goodput: the requests per
second that completed in the window meeting every SLO set (TTFT and TPOT), DistServe's
definition. A failed request, or one that streamed no token, meets none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.load.log import Measurement
from bench.load.stats import histogram
from bench.results.histogram import encode, percentile


@dataclass(frozen=True)
class RequestMetrics:
    """Per measured request (those meant for the window), seconds; NaN where not defined (a
    failed request; TPOT of a one-token answer)."""

    ttft_s: np.ndarray
    tpot_s: np.ndarray
    itl_s: np.ndarray  # every gap of every answered request, concatenated
    output_tokens: np.ndarray
    input_tokens: np.ndarray
    ok: np.ndarray
    finished_in_window: np.ndarray
    from_usage: np.ndarray


def request_metrics(m: Measurement) -> RequestMetrics | None:
    """The per-request figures of `m`'s measured requests; None where nothing streamed."""
    cols = m.log.columns()
    if "output_tokens" not in cols:
        return None
    intended, done, ok = cols["intended"], cols["done"], cols["ok"]
    measured = (intended >= m.window_start) & (intended <= m.window_end)
    good = ok & measured
    first, last = cols["first_token"][measured], cols["last_token"][measured]
    output = cols["output_tokens"][measured]
    answered = good[measured]
    ttft = np.where(answered, first - intended[measured], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(answered & (output > 1), (last - first) / (output - 1), np.nan)
    gaps = [np.diff(times) for times in cols["token_times"][good] if len(times) > 1]
    return RequestMetrics(
        ttft_s=ttft,
        tpot_s=tpot,
        itl_s=np.concatenate(gaps) if gaps else np.zeros(0),
        output_tokens=output,
        input_tokens=cols["input_tokens"][measured],
        ok=answered,
        finished_in_window=answered
        & (done[measured] >= m.window_start)
        & (done[measured] <= m.window_end),
        from_usage=cols["tokens_from_usage"][measured],
    )


def meets_slos(r: RequestMetrics, slo_ttft_ms: float | None, slo_tpot_ms: float | None):
    """Per measured request: answered, with its first token and its pace within the SLOs set
    (a one-token answer has no pace to miss)."""
    meets = r.ok & np.isfinite(r.ttft_s)
    if slo_ttft_ms is not None:
        meets &= r.ttft_s * 1e3 <= slo_ttft_ms
    if slo_tpot_ms is not None:
        meets &= ~(r.tpot_s * 1e3 > slo_tpot_ms)
    return meets


def summarize_generation(
    m: Measurement, slo_ttft_ms: float | None, slo_tpot_ms: float | None
) -> dict:
    """The generative columns of one point (none where its requests streamed no tokens)."""
    r = request_metrics(m)
    if r is None:
        return {}
    length = m.window_end - m.window_start
    per_s = (lambda count: count / length) if length > 0 else (lambda count: np.nan)
    row: dict = {}
    for name, values in (("ttft", r.ttft_s), ("itl", r.itl_s), ("tpot", r.tpot_s)):
        finite = values[np.isfinite(values)]
        for q in (50, 90, 99):
            row[f"{name}_p{q}_ms"] = percentile(finite, q) * 1e3
        row[f"{name}_mean_ms"] = float(finite.mean() * 1e3) if len(finite) else np.nan
    row["ttft_hist"] = encode(histogram(r.ttft_s[np.isfinite(r.ttft_s)]))
    row["itl_hist"] = encode(histogram(r.itl_s))
    answered = r.ok
    with np.errstate(invalid="ignore", divide="ignore"):
        own_rate = 1.0 / r.tpot_s[np.isfinite(r.tpot_s) & (r.tpot_s > 0)]
    usage = r.from_usage[answered]
    row.update(
        {
            "output_tokens_per_s": per_s(float(np.nansum(r.output_tokens[r.finished_in_window]))),
            # One request's own pace, the other side of the trade-off against the total.
            "request_output_tokens_per_s_p50": percentile(own_rate, 50),
            "input_tokens_mean": _mean(r.input_tokens[answered]),
            "output_tokens_mean": _mean(r.output_tokens[answered]),
            "output_tokens_counted_by": (
                "none" if not len(usage) else
                "usage" if np.all(usage == 1) else
                "stream" if np.all(usage == 0) else "usage and stream"
            ),
        }
    )  # fmt: skip
    judged = slo_ttft_ms is not None or slo_tpot_ms is not None
    meets = meets_slos(r, slo_ttft_ms, slo_tpot_ms)
    row["goodput_qps"] = per_s(int((meets & r.finished_in_window).sum())) if judged else np.nan
    row["slo_attainment"] = float(meets.mean()) if judged and len(meets) else np.nan
    return row


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else np.nan
