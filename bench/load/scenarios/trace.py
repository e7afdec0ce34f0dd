"""`trace`: open-loop arrivals replaying demand that changes over time: a trace file (per request
or per interval, `bench.traces`) or a built-in pattern (a diurnal cycle, a flash crowd), optionally
played faster (`speedup`) and at a multiple of its rate (`scale`), seeded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

from bench import traces
from bench.load.points import LoadPoint
from bench.load.scenarios.base import ScenarioConfig
from bench.load.shapes import OpenLoop, Shape
from bench.registry import option
from bench.validation import Choice, at_least, positive, require


class TracePattern(Choice):
    """The built-in traces, for when no file is given."""

    diurnal = "diurnal"
    flash_crowd = "flash_crowd"


@option("scenario")
@dataclass
class TraceScenarioConfig(ScenarioConfig):
    """Open loop: one point replaying a trace. `path` (CSV or parquet, see `bench.traces`) when
    given, else the built-in `pattern`. Times in the trace are trace seconds; the load plays them
    `speedup` times faster, at `scale` times their rate."""

    name: str = "trace"
    path: str | None = None
    speedup: float = 1.0
    scale: float = 1.0
    pattern: TracePattern = TracePattern.diurnal
    # diurnal: from trough_qps up to peak_qps at half the period and back, sinusoidally.
    trough_qps: float = 5.0
    peak_qps: float = 20.0
    period_s: float = 60.0
    # flash_crowd: base_qps, then factor x base_qps from crowd_at_s for crowd_s.
    base_qps: float = 10.0
    factor: float = 3.0
    crowd_at_s: float = 20.0
    crowd_s: float = 20.0
    # Client connections, as in `server`; null: unlimited.
    connections: int | None = None
    # The point's time series (throughput, p50/p99, errors, offered rate) per window this long.
    window_s: float = 5.0
    # A generated trace lasts warmup_s + duration_s (x speedup in trace seconds); a file, as
    # long as it lasts (duration_s is then the file's length after the warm-up).
    warmup_s: float = 0.0
    duration_s: float = 60.0
    min_duration_s: float = 10.0
    min_requests: int = 100
    # The rate changes by design: windows are not compared for stability.
    sparse: ClassVar[bool] = True

    def validate(self, at: str = "scenario") -> None:
        super().validate(at)
        positive(self.speedup, f"{at}.speedup")
        positive(self.scale, f"{at}.scale")
        positive(self.window_s, f"{at}.window_s", unit=" s")
        at_least(self.connections, 1, f"{at}.connections", nullable=True)
        if self.path is not None:
            # Read now, so a bad file is refused before anything is measured.
            length = self._file_trace().length_s / self.speedup
            require(
                self.warmup_s < length,
                f"{at}.warmup_s",
                f"must be shorter than the trace ({length:g} s at speedup {self.speedup:g}), "
                f"got {self.warmup_s:g}",
            )
            return
        if self.pattern == TracePattern.diurnal:
            at_least(self.trough_qps, 0, f"{at}.trough_qps")
            positive(self.peak_qps, f"{at}.peak_qps")
            require(
                self.trough_qps <= self.peak_qps,
                f"{at}.trough_qps",
                f"must be at most peak_qps ({self.peak_qps:g}), got {self.trough_qps:g}",
            )
            positive(self.period_s, f"{at}.period_s", unit=" s")
        else:
            positive(self.base_qps, f"{at}.base_qps")
            positive(self.factor, f"{at}.factor")
            at_least(self.crowd_at_s, 0, f"{at}.crowd_at_s", unit=" s")
            positive(self.crowd_s, f"{at}.crowd_s", unit=" s")

    def _file_trace(self) -> traces.Trace:
        return traces.read_trace(self.path, self.duration_s * self.speedup)

    def settings(self) -> dict:
        """What the point replays, as its `trace` field holds it."""
        common = {"speedup": float(self.speedup), "scale": float(self.scale)}
        if self.path is not None:
            return {"path": self.path, "sha256": traces.digest(self.path), **common}
        if self.pattern == TracePattern.diurnal:
            pattern = dict(
                trough_qps=float(self.trough_qps),
                peak_qps=float(self.peak_qps),
                period_s=float(self.period_s),
            )
        else:
            pattern = dict(
                base_qps=float(self.base_qps),
                factor=float(self.factor),
                crowd_at_s=float(self.crowd_at_s),
                crowd_s=float(self.crowd_s),
            )
        return {"pattern": str(self.pattern), **pattern, **common}

    def points(self) -> list[LoadPoint]:
        duration = self.duration_s
        if self.path is not None:
            duration = self._file_trace().length_s / self.speedup - self.warmup_s
        settings = json.dumps(self.settings(), sort_keys=True)
        return [self.point(duration_s=duration, connections=self.connections, trace=settings)]

    def window_length_s(self) -> float:
        return self.window_s

    @classmethod
    def trace_of(cls, point: LoadPoint) -> traces.Trace:
        """The trace a point replays, in trace seconds."""
        found = json.loads(point.trace)
        length = (point.warmup_s + point.duration_s) * found["speedup"]
        if "path" in found:
            return traces.read_trace(found["path"], length)
        if found["pattern"] == TracePattern.diurnal:
            return traces.diurnal(found["trough_qps"], found["peak_qps"], found["period_s"], length)
        return traces.flash_crowd(
            found["base_qps"], found["factor"], found["crowd_at_s"], found["crowd_s"], length
        )

    @classmethod
    def shape(cls, point: LoadPoint) -> Shape:
        found = json.loads(point.trace)
        offsets = traces.arrivals(
            cls.trace_of(point), point.schedule_seed, found["speedup"], found["scale"]
        )
        return OpenLoop(offsets, point.connections)

    @classmethod
    def label(cls, point: LoadPoint) -> str:
        found = json.loads(point.trace)
        if "path" in found:
            what = found["path"].rsplit("/", 1)[-1]
        elif found["pattern"] == TracePattern.diurnal:
            what = f"diurnal {found['trough_qps']:g}-{found['peak_qps']:g} qps"
        else:
            what = f"flash crowd {found['factor']:g}x {found['base_qps']:g} qps"
        faster = f" x{found['speedup']:g} speed" if found["speedup"] != 1 else ""
        more = f" x{found['scale']:g} rate" if found["scale"] != 1 else ""
        return f"trace {what}{faster}{more}"
