"""What every scenario shares: its config fields (how long, how much warm-up, what makes a point
valid), its pure validation, and how its points are chosen and issued.

A scenario is one module in this package: a config dataclass registered with
`@option("scenario")`, which says which load points to measure (`points`, or `next_point` for
one that chooses from what it measured) and how each point's load is shaped (`shape`), plus its
YAML preset in `conf/scenario/`. Nothing else names it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from omegaconf import MISSING

from bench.load.generation import Lengths
from bench.load.payloads import Repeats
from bench.load.points import LoadPoint
from bench.load.sampling import CONFIDENCE
from bench.load.shapes import Shape
from bench.validation import Percentile, at_least, positive, require

# Each point's time series (throughput, latency, errors, offered rate over time) in windows of
# this many seconds, unless its scenario says otherwise (`trace`: `window_s`).
TIMELINE_WINDOW_S = 5.0


@dataclass
class ScenarioConfig:
    """What every load point shares: how long, how much warm-up, and what makes it valid."""

    name: str = MISSING
    batch_size: int = 1
    warmup_s: float = 2.0
    duration_s: float = 10.0
    # Validity (MLPerf LoadGen style): a point shorter than these is INVALID.
    min_duration_s: float = 5.0
    min_requests: int = 100
    # The last `stability_windows` windows must agree within `stability_tolerance`.
    stability_windows: int = 3
    stability_tolerance: float = 0.10
    # A send more than `late_send_ms` after its intended time is late; over `max_late_fraction`
    # of them and the generator, not the system under test, set the pace.
    late_send_ms: float = 1.0
    max_late_fraction: float = 0.01
    # Optional latency SLO on a percentile (p50, p90, p95, p99, p999) of `latency_*`.
    slo_ms: float | None = None
    slo_percentile: Percentile = Percentile.p99
    # Requests still in flight this long after the window ends count as errors (timeouts).
    drain_timeout_s: float = 30.0
    # Bounds (early stopping, the late-send share) are stated at this confidence.
    confidence: float = CONFIDENCE
    # Two seeds, kept apart as LoadGen keeps its schedule and sample seeds: one draws the
    # arrival schedule, the other the payloads sent, so either can change alone.
    schedule_seed: int = 0
    payload_seed: int = 0
    # A workload with repeats (bench.load.payloads), what a response cache answers: the share
    # of requests that repeat an earlier request's payload, or a pool of `distinct` payloads
    # drawn by Zipf popularity `zipf_s` (null: uniformly). None of them: each point cycles
    # through 64 payloads, as before.
    repeat_ratio: float | None = None
    distinct: int | None = None
    zipf_s: float | None = None
    # Generative models only (`bench.load.generation`): each request's prompt length and the
    # output length it asks for (`max_tokens`, end-of-sequence ignored), in tokens: a mean and
    # a spread (normal, seeded by `payload_seed`; 0: every request the mean).
    input_tokens: int = 128
    input_tokens_stddev: float = 0.0
    output_tokens: int = 128
    output_tokens_stddev: float = 0.0
    # Generative SLOs, ms: time to first token (from the intended send) and time per output
    # token (a request's mean gap after its first token). A request meets them when it meets
    # both (null: that one is not judged); `goodput_qps` counts such requests per second, and
    # a point meets them when at least `slo_percentile` of its requests do (p99: 99%).
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None

    # How the verdict judges this scenario's points. Sparse: a window holds a few requests,
    # cold and warm by design, so windows are not compared. Open-ended: the point lasts until
    # its requests return (offline), so neither latency stability nor pacing is judged.
    sparse: ClassVar[bool] = False
    open_ended: ClassVar[bool] = False
    # Fields that list points rather than configure each: left out of the configuration's
    # identity, so adding an entry to a finished run measures only the new point.
    point_lists: ClassVar[tuple[str, ...]] = ()

    def validate(self, at: str = "scenario") -> None:
        at_least(self.batch_size, 1, f"{at}.batch_size")
        positive(self.duration_s, f"{at}.duration_s")
        at_least(self.warmup_s, 0, f"{at}.warmup_s")
        at_least(self.min_duration_s, 0, f"{at}.min_duration_s")
        at_least(self.min_requests, 0, f"{at}.min_requests")
        at_least(self.stability_windows, 1, f"{at}.stability_windows")
        positive(self.stability_tolerance, f"{at}.stability_tolerance")
        positive(self.late_send_ms, f"{at}.late_send_ms")
        at_least(self.max_late_fraction, 0, f"{at}.max_late_fraction")
        positive(self.slo_ms, f"{at}.slo_ms", nullable=True)
        positive(self.drain_timeout_s, f"{at}.drain_timeout_s")
        self.repeats.validate(at)
        self.lengths.validate(at)
        positive(self.slo_ttft_ms, f"{at}.slo_ttft_ms", nullable=True)
        positive(self.slo_tpot_ms, f"{at}.slo_tpot_ms", nullable=True)
        require(
            0.5 <= self.confidence < 1.0,
            f"{at}.confidence",
            f"must be at least 0.5 and below 1, got {self.confidence}",
        )

    @property
    def repeats(self) -> Repeats:
        return Repeats(self.repeat_ratio, self.distinct, self.zipf_s)

    @property
    def lengths(self) -> Lengths:
        return Lengths(
            self.input_tokens,
            self.input_tokens_stddev,
            self.output_tokens,
            self.output_tokens_stddev,
        )

    @property
    def generative_slos(self) -> bool:
        return self.slo_ttft_ms is not None or self.slo_tpot_ms is not None

    def points(self) -> list[LoadPoint]:
        """The load points, in the order they are measured (scenarios that choose each point
        from the ones measured before override `next_point` instead)."""
        raise NotImplementedError(f"scenario {self.name}: no fixed list of points")

    def next_point(self, measured: Sequence[dict]) -> LoadPoint | None:
        """The next point to measure, given the rows already measured under this configuration
        (each carries its point as JSON in `point`); None when the scenario is done."""
        seen = [json.loads(row["point"]) for row in measured]
        return next((p for p in self.points() if p.as_dict() not in seen), None)

    def point(self, **fields) -> LoadPoint:
        """A point with the settings every point shares, of this scenario unless `fields` name
        another (a search measures `server` points)."""
        common = dict(
            scenario=self.name,
            batch_size=self.batch_size,
            warmup_s=self.warmup_s,
            duration_s=self.duration_s,
            schedule_seed=self.schedule_seed,
            payload_seed=self.payload_seed,
        )
        return LoadPoint(**{**common, **fields})

    def window_length_s(self) -> float:
        """How long each window of a point's time series is (`timeline_*` columns)."""
        return TIMELINE_WINDOW_S

    @classmethod
    def shape(cls, point: LoadPoint) -> Shape:
        """How the driver issues `point`'s requests."""
        raise NotImplementedError(f"scenario {cls.name}: its points issue no load of their own")

    @classmethod
    def label(cls, point: LoadPoint) -> str:
        return f"{point.scenario} batch {point.batch_size}"
