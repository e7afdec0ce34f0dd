"""Arrival traces: demand that changes over time, read from a file or generated, as the seeded
arrival times an open-loop load (`scenario=trace`) and the planner's autoscaling simulation
replay. Pure functions of their inputs and a seed; no clocks.

A trace file is CSV or parquet in one of two forms:

- per request: a column `timestamp_s`, one row per request, seconds from the start, in order;
- per interval: columns `start_s` and `rate_qps`, one row per interval, in order of start: the
  rate holds from the row's start to the next row's (the last row lasts as long as the one
  before it; a single row lasts `duration_s`), with Poisson arrivals inside.

Other columns are ignored. A bad file is refused with its path, the line (CSV: the header is
line 1; parquet: row numbers from 1) and the problem.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.validation import ConfigError

if TYPE_CHECKING:
    import pandas as pd

TIMESTAMP = "timestamp_s"
START = "start_s"
RATE = "rate_qps"
# Traces shipped with the package: `pkg://bench.conf/scenario/data/example_day.csv`.
_PACKAGE_SCHEME = "pkg://"


class TraceError(ConfigError):
    """A trace file that cannot be replayed; the message names the file, the line and why."""


@dataclass(frozen=True)
class Trace:
    """Demand over `length_s` seconds: per-request times (`timestamps`), or a rate per interval
    (`starts`, `rates`: the rate from each start to the next, the last to `length_s`)."""

    length_s: float
    timestamps: np.ndarray | None = None
    starts: np.ndarray | None = None
    rates: np.ndarray | None = None

    @property
    def peak_qps(self) -> float:
        """The highest rate in the trace (per request: the most requests in any one second)."""
        if self.rates is not None:
            return float(self.rates.max())
        counts = np.bincount(self.timestamps.astype(int))
        return float(counts.max())


def resolve(path: str) -> Path:
    """A trace's file: `pkg://package/relative/path` for one shipped with a package, else the
    path as given (relative to the current folder)."""
    if path.startswith(_PACKAGE_SCHEME):
        package, _, inner = path[len(_PACKAGE_SCHEME) :].partition("/")
        return Path(resources.files(package)) / inner
    return Path(path).expanduser()


def digest(path: str) -> str:
    """The content hash of a trace file: a changed file is a new load point."""
    return hashlib.sha256(resolve(path).read_bytes()).hexdigest()[:16]


def read_trace(path: str, duration_s: float | None = None) -> Trace:
    """The trace in file `path` (CSV or parquet); TraceError naming the file, the line and the
    problem. `duration_s`: how long a per-interval file of a single row lasts."""
    file = resolve(path)
    table, first_line = _read_table(file, path)
    columns = [str(c).strip() for c in table.columns]
    table.columns = columns
    if table.empty:
        raise TraceError(
            f"{path}: empty: no rows under the header; a trace needs one row per request "
            f"({TIMESTAMP}) or per interval ({START}, {RATE})"
        )
    if TIMESTAMP in columns:
        times = _numbers(table[TIMESTAMP], TIMESTAMP, path, first_line)
        _in_order(times, TIMESTAMP, path, first_line, strictly=False)
        return Trace(length_s=float(times[-1]), timestamps=times)
    if START in columns and RATE in columns:
        starts = _numbers(table[START], START, path, first_line)
        rates = _numbers(table[RATE], RATE, path, first_line)
        _in_order(starts, START, path, first_line, strictly=True)
        if not (rates > 0).any():
            raise TraceError(f"{path}: every {RATE} is 0: the trace sends no request")
        if len(starts) > 1:
            last = starts[-1] - starts[-2]
        elif duration_s is not None and duration_s > 0:
            last = duration_s
        else:
            raise TraceError(f"{path}: a single interval and no duration to give it")
        return Trace(length_s=float(starts[-1] + last), starts=starts, rates=rates)
    found = ", ".join(columns) or "none"
    raise TraceError(
        f"{path}: line {first_line - 1}: missing column: need {TIMESTAMP} (one row per "
        f"request) or {START} and {RATE} (one row per interval); found {found}"
    )


def _read_table(file: Path, path: str) -> tuple[pd.DataFrame, int]:
    """The file's table, cells as text (CSV) or as stored (parquet), and the line number of
    its first row."""
    # Imported here: every scenario module is loaded wherever a config is composed, a serving
    # worker's included, and the worker's image does not install pandas.
    import pandas as pd

    suffix = file.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise TraceError(f"{path}: not a .csv or .parquet file")
    try:
        if suffix == ".csv":
            table = pd.read_csv(file, dtype=str, keep_default_na=False, skip_blank_lines=True)
            return table, 2  # line 1 is the header
        return pd.read_parquet(file), 1
    except FileNotFoundError:
        raise TraceError(f"{path}: no such file") from None
    except pd.errors.EmptyDataError:
        raise TraceError(f"{path}: empty: no header and no rows") from None
    except (OSError, ValueError) as exc:
        raise TraceError(f"{path}: cannot read it: {exc}") from None


def _numbers(column: pd.Series, name: str, path: str, first_line: int) -> np.ndarray:
    """The column as floats; TraceError at the first cell that is empty, not a number, not
    finite or negative."""
    values = np.empty(len(column))
    for i, cell in enumerate(column.tolist()):
        line = first_line + i
        text = str(cell).strip() if cell is not None else ""
        if text == "" or (isinstance(cell, float) and math.isnan(cell)):
            raise TraceError(f"{path}: line {line}: {name} is empty")
        try:
            value = float(text)
        except ValueError:
            raise TraceError(f"{path}: line {line}: {name} {text!r} is not a number") from None
        if not math.isfinite(value):
            raise TraceError(f"{path}: line {line}: {name} {text!r} is not a finite number")
        if value < 0:
            raise TraceError(f"{path}: line {line}: {name} {text} is negative")
        values[i] = value
    return values


def _in_order(values: np.ndarray, name: str, path: str, first_line: int, strictly: bool) -> None:
    steps = np.diff(values)
    bad = np.flatnonzero(steps <= 0 if strictly else steps < 0)
    if len(bad):
        i = int(bad[0]) + 1
        relation = "not after" if strictly else "before"
        raise TraceError(
            f"{path}: line {first_line + i}: {name} {values[i]:g} is {relation} the line "
            f"above's {values[i - 1]:g}: the rows must be sorted by {name}"
            + ("" if not strictly else ", each interval starting after the one before")
        )


# --- generators ---------------------------------------------------------------------------------


def diurnal(trough_qps: float, peak_qps: float, period_s: float, length_s: float) -> Trace:
    """A day's shape: the rate rises from `trough_qps` at 0 to `peak_qps` at half the period
    and falls back, sinusoidally, repeating every `period_s`; one interval per 1/96 of the
    period (15 minutes of a day), Poisson arrivals inside."""
    step = period_s / 96.0
    starts = np.arange(0.0, length_s, step)
    middle = starts + step / 2.0
    rates = trough_qps + (peak_qps - trough_qps) * (1.0 - np.cos(2 * np.pi * middle / period_s)) / 2
    return Trace(length_s=float(length_s), starts=starts, rates=rates)


def flash_crowd(
    base_qps: float, factor: float, at_s: float, crowd_s: float, length_s: float
) -> Trace:
    """`base_qps`, then a step to `factor` x `base_qps` at `at_s` for `crowd_s`, then back."""
    starts = np.array([0.0, at_s, at_s + crowd_s])
    rates = np.array([base_qps, base_qps * factor, base_qps])
    keep = starts < length_s
    return Trace(length_s=float(length_s), starts=starts[keep], rates=rates[keep])


def scaled_to_peak(trace: Trace, peak_qps: float) -> Trace:
    """A per-interval trace with its rates scaled so that its highest is `peak_qps`."""
    return Trace(trace.length_s, starts=trace.starts, rates=trace.rates * peak_qps / trace.peak_qps)


# --- arrivals -----------------------------------------------------------------------------------


def arrivals(trace: Trace, seed: int, speedup: float = 1.0, scale: float = 1.0) -> np.ndarray:
    """Send offsets (seconds from the start, sorted) of the trace played `speedup` times faster
    with `scale` times its rate, seeded: per interval, Poisson at the scaled rate; per request,
    each one kept with probability `scale` (below 1) or joined by others (above 1) placed at
    random before the next one."""
    rng = np.random.default_rng(seed)
    if trace.timestamps is not None:
        times = _rescaled(trace.timestamps, trace.length_s, scale, rng)
    else:
        times = piecewise_poisson(trace.starts, trace.rates * scale, trace.length_s, rng)
    return times / speedup


def piecewise_poisson(
    starts: np.ndarray, rates: np.ndarray, length_s: float, rng: np.random.Generator
) -> np.ndarray:
    """Poisson arrivals at `rates[i]` from `starts[i]` to the next start (the last to
    `length_s`), sorted."""
    ends = np.append(starts[1:], length_s)
    counts = rng.poisson(np.maximum(rates, 0.0) * np.maximum(ends - starts, 0.0))
    times = np.concatenate(
        [rng.uniform(a, b, size=n) for a, b, n in zip(starts, ends, counts, strict=True)]
        or [np.zeros(0)]
    )
    return np.sort(times)


def _rescaled(times: np.ndarray, length_s: float, scale: float, rng: np.random.Generator):
    if scale == 1.0:
        return times.copy()
    whole, part = math.floor(scale), scale - math.floor(scale)
    copies = whole + (rng.uniform(size=len(times)) < part).astype(int)
    gaps = np.diff(np.append(times, length_s))
    which = np.repeat(np.arange(len(times)), copies)
    # The first copy of each request stays where it was; the others fall before the next one.
    offsets = rng.uniform(size=len(which)) * gaps[which]
    firsts = np.cumsum(copies) - copies
    offsets[firsts[copies > 0]] = 0.0
    return np.sort(times[which] + offsets)
