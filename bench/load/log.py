"""Per-request records: when each request was meant to go and each step it took, its outcome,
the server's timings.

`intended`: when the schedule meant it to go. `ready`: when the sender, done with the request
before, began waiting for this one (after `intended`: the sender itself was behind).
`dispatched`: when the sender handed it on (late although ready in time: the sender's thread
woke late, its process busy). `started`: when the driver began it (later than dispatched: the
event loop was busy; the same where the sender hands requests to the runner itself). `sent`:
when it went to the runner (later than started only when it waited for a free client
connection). `done`: when its response came (taken in the thread that finished it).
`cache_hit`: 1 where a response cache answered, 0 where the model did behind one, NaN where
there was no cache. `sender_cpu`: the CPU seconds the sender process had used when it
dispatched the request (NaN where no sender process paces the load).

A generative request (its response streamed tokens) also records `first_token` and
`last_token` (when the first and the last chunk carrying text arrived), `output_tokens` and
`input_tokens`, `tokens_from_usage` (1: the server's `usage` counted them, 0: the harness
counted one token per chunk), and `token_times`, every chunk's arrival, from which each
inter-token gap is read. These columns exist only in logs of generative points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.load.sut import TokenStream


class RequestLog:
    """Growable columns, one slot per request; times are `time.perf_counter()` seconds."""

    _FLOAT_COLUMNS = (
        "intended",
        "ready",
        "dispatched",
        "started",
        "sent",
        "done",
        "queue_s",
        "compute_s",
        "cache_hit",
        "sender_cpu",
    )
    _TOKEN_COLUMNS = (
        "first_token",
        "last_token",
        "output_tokens",
        "input_tokens",
        "tokens_from_usage",
    )

    def __init__(self, capacity: int = 1024) -> None:
        self.size = 0
        for name in self._FLOAT_COLUMNS + self._TOKEN_COLUMNS:
            setattr(self, name, np.full(capacity, np.nan))
        self.token_times: list[np.ndarray | None] = [None] * capacity
        self.ok = np.zeros(capacity, dtype=bool)
        self.errors: dict[str, int] = {}
        self.generative = False  # a response streamed tokens

    def new(
        self,
        intended: float,
        dispatched: float,
        ready: float | None = None,
        sender_cpu: float = np.nan,
    ) -> int:
        """Reserve the next slot for a request meant to be sent at `intended`, handed on at
        `dispatched` by a sender ready for it at `ready` (default: when it was meant to go)."""
        if self.size == len(self.intended):
            self._grow()
        index = self.size
        self.intended[index] = intended
        self.ready[index] = intended if ready is None else ready
        self.dispatched[index] = dispatched
        self.sender_cpu[index] = sender_cpu
        self.size += 1
        return index

    def fail(self, index: int, done: float, message: str) -> None:
        self.done[index] = done
        self.errors[message] = self.errors.get(message, 0) + 1

    def tokens(self, index: int, stream: TokenStream) -> None:
        """Record what request `index` streamed."""
        self.generative = True
        times = np.asarray(stream.times, dtype=float)
        self.token_times[index] = times
        if len(times):
            self.first_token[index], self.last_token[index] = times[0], times[-1]
        self.output_tokens[index] = stream.output_tokens
        self.input_tokens[index] = stream.input_tokens
        self.tokens_from_usage[index] = float(stream.counted_by == "usage")

    def _grow(self) -> None:
        for name in self._FLOAT_COLUMNS + self._TOKEN_COLUMNS:
            old = getattr(self, name)
            setattr(self, name, np.concatenate([old, np.full(len(old), np.nan)]))
        self.token_times.extend([None] * len(self.token_times))
        self.ok = np.concatenate([self.ok, np.zeros(len(self.ok), dtype=bool)])

    def columns(self) -> dict[str, np.ndarray]:
        """The filled part of every column (the token columns only where a request streamed)."""
        names = self._FLOAT_COLUMNS + (self._TOKEN_COLUMNS if self.generative else ())
        cols = {name: getattr(self, name)[: self.size] for name in names}
        cols["ok"] = self.ok[: self.size]
        if self.generative:
            times = np.empty(self.size, dtype=object)
            for index, streamed in enumerate(self.token_times[: self.size]):
                times[index] = np.zeros(0) if streamed is None else streamed
            cols["token_times"] = times
        return cols


@dataclass
class Measurement:
    """What the driver hands on: the log and the measured window, in perf_counter seconds."""

    log: RequestLog
    window_start: float
    window_end: float
    # Offline windows end at the last completion; the others at the end of the schedule.
    open_ended: bool = False
    # Client connections the load was offered through (None: no limit, nothing to exhaust).
    connections: int | None = None
    # The payload index of the log's request 0 (offline: its warm-up's requests came before).
    first_payload: int = 0
    # Open loop: whether the sender process ran under the real-time policy (`bench.load.sender`);
    # None where no sender timed the load (closed loop, offline).
    sender_real_time: bool | None = None
