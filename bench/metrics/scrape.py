"""The server's own view of a load point, from its Prometheus metrics: scraped at the start and
the end of the point, parsed with prometheus-client's parser, and differenced, so that a row
holds what the server saw (requests, failures, latency, queue and compute time, batch sizes)
beside what the client saw. The difference between the two latencies is the network and the
client.

Servers name their metrics differently; a dialect says where each figure is in one family of
servers: our workers (`bench.monitoring`), Triton, TorchServe and vLLM. The first whose request
counter a scrape holds is the one read. Counters are summed over the scraped processes (each
replica keeps its own) and over the label sets of the served model (Triton's versions, vLLM's
finish reasons); series of other models are left out.
"""

from __future__ import annotations

import asyncio
import math
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bench import monitoring as bench

_NAN = float("nan")
_TIMEOUT_S = 5.0
# The text format; a server that also speaks OpenMetrics or protobuf answers in this one.
_ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"

# Series: (sample name, labels without the model label) -> value, summed over processes.
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class _Mean:
    """A mean per request: the increase of a total (`total`, in `scale` seconds) over the
    increase of a count."""

    total: str
    count: str
    scale: float = 1.0


@dataclass(frozen=True)
class Dialect:
    name: str
    model_label: str
    requests: tuple[str, ...]  # counters that sum to the requests received
    failures: tuple[str, ...] = ()  # counters that sum to the requests failed
    latency: _Mean | None = None
    latency_histogram: str | None = None  # a histogram of latency, in seconds
    queue: _Mean | None = None
    compute: _Mean | None = None
    batch: _Mean | None = None  # items per model execution


def _histogram_mean(name: str) -> _Mean:
    return _Mean(f"{name}_sum", f"{name}_count")


DIALECTS = (
    Dialect(
        "bench",
        bench.MODEL_LABEL,
        requests=(bench.REQUESTS,),
        failures=(bench.FAILURES,),
        latency=_histogram_mean(bench.LATENCY),
        latency_histogram=bench.LATENCY,
        queue=_histogram_mean(bench.QUEUE),
        compute=_histogram_mean(bench.COMPUTE),
        batch=_histogram_mean(bench.BATCH_SIZE),
    ),
    # Triton's cumulative microsecond counters are of successful requests.
    Dialect(
        "triton",
        "model",
        requests=("nv_inference_request_success_total", "nv_inference_request_failure_total"),
        failures=("nv_inference_request_failure_total",),
        latency=_Mean(
            "nv_inference_request_duration_us_total", "nv_inference_request_success_total", 1e-6
        ),
        queue=_Mean(
            "nv_inference_queue_duration_us_total", "nv_inference_request_success_total", 1e-6
        ),
        compute=_Mean(
            "nv_inference_compute_infer_duration_us_total",
            "nv_inference_request_success_total",
            1e-6,
        ),
        batch=_Mean("nv_inference_count_total", "nv_inference_exec_count_total"),
    ),
    Dialect(
        "torchserve",
        "model_name",
        requests=("ts_inference_requests_total",),
        latency=_Mean(
            "ts_inference_latency_microseconds_total", "ts_inference_requests_total", 1e-6
        ),
        queue=_Mean("ts_queue_latency_microseconds_total", "ts_inference_requests_total", 1e-6),
    ),
    # vLLM counts finished requests only (by finish reason); it has no failure counter.
    Dialect(
        "vllm",
        "model_name",
        requests=("vllm:request_success_total",),
        latency=_histogram_mean("vllm:e2e_request_latency_seconds"),
        latency_histogram="vllm:e2e_request_latency_seconds",
        queue=_histogram_mean("vllm:request_queue_time_seconds"),
        compute=_histogram_mean("vllm:request_inference_time_seconds"),
    ),
)

COLUMNS = (
    "server_metrics",
    "server_metrics_error",
    "server_requests",
    "server_failures",
    "server_latency_mean_ms",
    "server_latency_p50_ms",
    "server_latency_p99_ms",
    "server_queue_mean_ms",
    "server_compute_mean_ms",
    "server_batch_size_mean",
    "client_point_requests",
    "client_point_latency_mean_ms",
    "network_client_mean_ms",
)


class ScrapeError(RuntimeError):
    """A metrics URL that did not answer with metrics we can read; the message says which."""


@dataclass(frozen=True)
class Scrape:
    """The served model's series at one moment, from every URL, as one dialect reads them."""

    dialect: Dialect
    series: Series


async def scrape(urls: Sequence[str], model: str) -> Scrape:
    """Fetch every URL at once and keep the series of `model`; ScrapeError where one fails."""
    texts = await asyncio.gather(*(asyncio.to_thread(_fetch, url) for url in urls))
    return parse(texts, model, ", ".join(urls))


def _fetch(url: str) -> str:
    request = urllib.request.Request(url, headers={"Accept": _ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            return response.read().decode("utf-8", "replace")
    except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
        raise ScrapeError(f"GET {url}: {exc}") from None


def parse(texts: Sequence[str], model: str, where: str = "the scrape") -> Scrape:
    """The series of `model` in expositions `texts` (one per process), summed across them."""
    samples = []
    for text in texts:
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError as exc:
            raise ScrapeError(f"{where}: not Prometheus's text format ({exc})") from None
        samples += [sample for family in families for sample in family.samples]
    names = {sample.name for sample in samples}
    dialect = next((d for d in DIALECTS if names & set(d.requests)), None)
    if dialect is None:
        known = ", ".join(d.requests[0] for d in DIALECTS)
        raise ScrapeError(f"{where}: no request counter we know ({known})")
    series: Series = defaultdict(float)
    for sample in samples:
        labels = dict(sample.labels)
        if labels.pop(dialect.model_label, model) != model:
            continue
        series[sample.name, tuple(sorted(labels.items()))] += sample.value
    if not any(name in dialect.requests for name, _ in series):
        raise ScrapeError(f"{where}: {dialect.name} metrics, but none of model {model!r}")
    return Scrape(dialect, dict(series))


def server_view(before: Scrape, after: Scrape) -> dict[str, float | str]:
    """The server's figures over the time between two scrapes (`server_*` columns)."""
    dialect = after.dialect
    if before.dialect != dialect:
        raise ScrapeError(f"the server's metrics changed from {before.dialect.name} to {dialect}")
    delta = {key: value - before.series.get(key, 0.0) for key, value in after.series.items()}
    if any(value < 0 for value in delta.values()):
        raise ScrapeError("counters went back during the point: the server restarted")

    def total(names: Sequence[str]) -> float:
        if not names:
            return _NAN
        return sum(value for (name, _), value in delta.items() if name in names)

    def mean_ms(mean: _Mean | None, unit: float = 1e3) -> float:
        if mean is None:
            return _NAN
        count = total((mean.count,))
        return total((mean.total,)) * mean.scale * unit / count if count > 0 else _NAN

    buckets = _buckets(delta, dialect.latency_histogram)
    return {
        "server_metrics": dialect.name,
        "server_requests": total(dialect.requests),
        "server_failures": total(dialect.failures),
        "server_latency_mean_ms": mean_ms(dialect.latency),
        "server_latency_p50_ms": histogram_quantile(0.50, buckets) * 1e3,
        "server_latency_p99_ms": histogram_quantile(0.99, buckets) * 1e3,
        "server_queue_mean_ms": mean_ms(dialect.queue),
        "server_compute_mean_ms": mean_ms(dialect.compute),
        "server_batch_size_mean": mean_ms(dialect.batch, unit=1.0),
    }


def _buckets(delta: Series, histogram: str | None) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a histogram's buckets, summed over its series."""
    if histogram is None:
        return []
    counts: dict[float, float] = defaultdict(float)
    for (name, labels), value in delta.items():
        if name == f"{histogram}_bucket":
            counts[float(dict(labels)["le"])] += value
    return sorted(counts.items())


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """The `q` quantile of cumulative `buckets` as Prometheus's `histogram_quantile` estimates
    it: linear within the bucket that holds it, the highest finite bound where that is +Inf;
    NaN without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return _NAN
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def client_view(sent: np.ndarray, done: np.ndarray, ok: np.ndarray) -> dict[str, float]:
    """The client's figures over the same span, the whole point (warm-up included, as the
    scrapes bracket it): requests sent, and the mean from send to answer of those answered."""
    answered = ok & np.isfinite(done) & np.isfinite(sent)
    latency = (done[answered] - sent[answered]) * 1e3
    return {
        "client_point_requests": float(np.isfinite(sent).sum()),
        "client_point_latency_mean_ms": float(latency.mean()) if len(latency) else _NAN,
    }


class ServerScrape:
    """The server's view of one load point: `begin()` scrapes before its first request,
    `end()` after its last, `summary(log)` gives its columns beside the client's (the
    request log's columns). A scrape that fails is said in `server_metrics_error`; the point
    goes on, measured by the client alone."""

    def __init__(self, urls: Sequence[str], model: str) -> None:
        self.urls = tuple(urls)
        self.model = model
        self._scrapes: list[Scrape] = []
        self._error = ""

    async def begin(self) -> None:
        await self._take()

    async def end(self) -> None:
        await self._take()

    async def _take(self) -> None:
        if not self.urls or self._error:
            return
        try:
            self._scrapes.append(await scrape(self.urls, self.model))
        except ScrapeError as exc:
            self._error = str(exc)

    def summary(self, log: dict[str, np.ndarray]) -> dict[str, float | str]:
        if not self.urls or self._error or len(self._scrapes) < 2:
            return not_scraped(self._error)
        try:
            row = {**not_scraped(), **server_view(*self._scrapes[:2])}
        except ScrapeError as exc:
            return not_scraped(str(exc))
        row.update(client_view(log["sent"], log["done"], log["ok"]))
        row["network_client_mean_ms"] = (
            row["client_point_latency_mean_ms"] - row["server_latency_mean_ms"]
        )
        return row


def not_scraped(error: str = "") -> dict[str, float | str]:
    """The columns of a point whose server was not scraped (`error`: why, where it failed)."""
    row: dict[str, float | str] = {column: _NAN for column in COLUMNS}
    row["server_metrics"] = ""
    row["server_metrics_error"] = error
    return row
