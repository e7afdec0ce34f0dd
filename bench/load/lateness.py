"""Why requests went late, from their records: each late request's delay split by where it was
spent, the culprit it names, and the stalls of the system under test. Pure functions, no clocks.

A request's way from its intended time to the runner (see `bench.load.log`):
  intended -> ready: the sender was still at work on earlier sends (the generator behind), for
      as much of it as the sender's own CPU time covers; the rest it spent waiting for a core;
  ready -> dispatched: the sender woke late from its sleep (the host: no core free for it);
  dispatched -> started: the harness's process was busy (its event loop, or the GIL held by
      other Python code of that process) before it began the request;
  started -> sent: it waited for a free client connection (only where their number is limited).
A late request's culprit is the step that took longest, unless it is one of the late run that
follows a stall of the system under test: when a server answers nothing for a while and then
answers a burst at once, the sends behind that burst are late because of the server.
"""

from __future__ import annotations

import numpy as np

from bench.results.histogram import percentile

# Culprits of a late start, in the columns' order: `late_<culprit>_fraction`.
CULPRITS = ("generator", "host", "process", "sut")
# A stall: no response for this many times the median time from send to response (and at
# least `_STALL_MIN_S`) while a request was out.
_STALL_FACTOR = 20.0
_STALL_MIN_S = 0.05


def sut_stalls(sent: np.ndarray, done: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) of every stretch long enough to be a stall in which a request was out
    and no response came: between consecutive responses, from the later of the first one and
    the earliest send still unanswered, to the next response."""
    finite = np.isfinite(sent) & np.isfinite(done)
    sent, done = sent[finite], done[finite]
    if len(done) < 2:
        return []
    threshold = max(_STALL_MIN_S, _STALL_FACTOR * float(np.median(done - sent)))
    order = np.argsort(done, kind="stable")
    done, sent = done[order], sent[order]
    # The earliest send among the requests answered at or after each response.
    earliest_after = np.minimum.accumulate(sent[::-1])[::-1]
    began = np.maximum(done[:-1], earliest_after[1:])
    stalled = np.flatnonzero(done[1:] - began > threshold)
    return [(float(began[k]), float(done[k + 1])) for k in stalled]


def _after_stalls(
    intended: np.ndarray, late: np.ndarray, stalls: list[tuple[float, float]]
) -> np.ndarray:
    """Late requests of the run that each stall set off: from the stall's start, every late
    one up to the first request on time that was meant to go after the stall ended."""
    blamed = np.zeros(len(intended), dtype=bool)
    order = np.argsort(intended, kind="stable")
    ordered = intended[order]
    for began, ended in stalls:
        for position in range(int(np.searchsorted(ordered, began)), len(order)):
            index = order[position]
            if late[index]:
                blamed[index] = True
            elif ordered[position] >= ended:
                break
    return blamed


def lateness(cols: dict[str, np.ndarray], measured: np.ndarray, late_send_s: float) -> dict:
    """The lateness columns of one point: over the requests `measured`, the share started late
    and its split by culprit, the share that waited for a connection, the lags of the sender's
    thread and of the event loop, and the system under test's stalls."""
    intended, ready, dispatched = cols["intended"], cols["ready"], cols["dispatched"]
    started, sent = cols["started"], cols["sent"]
    stalls = sut_stalls(sent, cols["done"])
    late_all = (started - intended) > late_send_s
    behind = np.clip(np.minimum(ready, dispatched) - intended, 0.0, None)
    # The sender's own CPU time since its previous dispatch: what of `behind` was its work.
    worked = np.diff(cols["sender_cpu"], prepend=np.nan)
    own = np.where(np.isfinite(worked), np.minimum(behind, worked), behind)
    steps = np.stack(
        [
            own,  # the generator behind, at work
            behind - own + dispatched - np.maximum(ready, intended),  # waiting for a core
            started - dispatched,  # the harness's process busy
        ]
    )
    culprit = np.argmax(np.nan_to_num(steps, nan=-np.inf), axis=0)
    after_stall = _after_stalls(intended, late_all, stalls)
    late, n = late_all[measured], int(measured.sum())
    row = {
        "late_send_fraction": float(late.mean()) if n else 0.0,
        "late_sends": int(late.sum()),
        "send_lateness_p99_ms": _p99_ms(started - intended, measured),
        # Sends held back by a busy client connection: the system under test pushed back.
        "blocked_send_fraction": float(((sent - started)[measured] > late_send_s).mean())
        if n
        else 0.0,
        "sender_wake_lag_p99_ms": _p99_ms(steps[1], measured),
        "harness_lag_p99_ms": _p99_ms(steps[2], measured),
        "sut_stalls": len(stalls),
        "sut_stall_max_s": max((end - start for start, end in stalls), default=0.0),
    }
    blame_sut = after_stall[measured] & late
    for i, name in enumerate(CULPRITS[:-1]):
        mine = late & ~blame_sut & (culprit[measured] == i)
        row[f"late_{name}_fraction"] = float(mine.mean()) if n else 0.0
    row["late_sut_fraction"] = float(blame_sut.mean()) if n else 0.0
    return row


def _p99_ms(values: np.ndarray, measured: np.ndarray) -> float:
    chosen = values[measured]
    chosen = chosen[np.isfinite(chosen)]
    return percentile(chosen, 99) * 1e3 if len(chosen) else 0.0
