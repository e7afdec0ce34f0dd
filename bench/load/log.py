"""Per-request records: intended, dispatched, sent and done times, outcome, server timings.

`intended` is when the schedule meant the request to go; `dispatched` when the generator got to
it (late here means the generator fell behind); `sent` when it went to the runner (later than
dispatched only when it waited for a free client connection); `done` when its response came.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class RequestLog:
    """Growable columns, one slot per request; times are `time.perf_counter()` seconds."""

    _FLOAT_COLUMNS = ("intended", "dispatched", "sent", "done", "queue_s", "compute_s")

    def __init__(self, capacity: int = 1024) -> None:
        self.size = 0
        for name in self._FLOAT_COLUMNS:
            setattr(self, name, np.full(capacity, np.nan))
        self.ok = np.zeros(capacity, dtype=bool)
        self.errors: dict[str, int] = {}

    def new(self, intended: float, dispatched: float) -> int:
        """Reserve the next slot for a request meant to be sent at `intended`."""
        if self.size == len(self.intended):
            self._grow()
        index = self.size
        self.intended[index] = intended
        self.dispatched[index] = dispatched
        self.size += 1
        return index

    def fail(self, index: int, done: float, message: str) -> None:
        self.done[index] = done
        self.errors[message] = self.errors.get(message, 0) + 1

    def _grow(self) -> None:
        for name in self._FLOAT_COLUMNS:
            old = getattr(self, name)
            setattr(self, name, np.concatenate([old, np.full(len(old), np.nan)]))
        self.ok = np.concatenate([self.ok, np.zeros(len(self.ok), dtype=bool)])

    def columns(self) -> dict[str, np.ndarray]:
        """The filled part of every column."""
        cols = {name: getattr(self, name)[: self.size] for name in self._FLOAT_COLUMNS}
        cols["ok"] = self.ok[: self.size]
        return cols


@dataclass
class Measurement:
    """What the driver hands on: the log and the measured window, in perf_counter seconds."""

    log: RequestLog
    window_start: float
    window_end: float
    # Offline windows end at the last completion; the others at the end of the schedule.
    open_ended: bool = False
