"""The open-loop sender, a process of its own: it sleeps until each request's intended time and
says "send request i now" over a pipe, so the schedule is kept (and its lateness timed) by a
process whose GIL nothing else holds. A model served in the harness's process (`direct`), whose
Python code holds that process's GIL, cannot delay the sends, only its own taking of them, as
it would a client's; `time.perf_counter` is the system's monotonic clock, the same in both
processes.

It asks for the lowest real-time priority (SCHED_FIFO 1): woken at a send's time, it then runs
at once rather than waiting for a busy core's time slice to end. With the model busy on every
core that wait was 2-4 ms at the 99th percentile under the kernel's EEVDF scheduler (MiniLM,
two workers on two cores), and made the points INVALID for late sends that the system under
test caused; under SCHED_FIFO, beside two busy processes, no wake-up was late by 1 ms (the
worst 0.16 ms). It sleeps nearly all the time, so it takes almost nothing from what it measures.
The policy needs CAP_SYS_NICE; without it the sender runs as an ordinary process, and says so.

`python -m bench.load.sender`, spoken to over stdin/stdout (binary, native byte order):
  it writes b"F" once started (b"R" where it could not get the real-time policy); then reads
  the start time and the count n (`_HEADER`) and n offsets (float64 seconds from the start);
  then, for each request in order, writes a record (`RECORD`: index, when it became ready to
  wait for it, when it sent it, and the CPU time this process had used by then, which tells
  its own work from waiting for a core) and exits after the last. A closed pipe (the harness
  gone) ends it. Records the harness has not read yet wait in this process (the pipe is
  written without blocking), never the sends: a harness busy serving a request (`direct`
  serves in the thread that reads the pipe) delays only its own taking of the next, as a busy
  server's full socket buffer would not stop an open-loop client.

Only the standard library is imported here: the process starts in tens of milliseconds.

Linux lets a sleeping thread wake up to its timer slack (50 us by default) after its time, to
batch wake-ups; a real-time thread has none, and an ordinary sender asks for none
(`PR_SET_TIMERSLACK`): its sends' lateness p50 went from 0.10 to 0.05 ms here (a 2 ms model at
190 requests/s).
"""

from __future__ import annotations

import ctypes
import os
import select
import struct
import sys
import time

_HEADER = struct.Struct("=dI")  # start (perf_counter seconds), number of requests
RECORD = struct.Struct("=Iddd")  # index, ready, dispatched, CPU seconds used
# The byte the sender writes when it has started: real-time or ordinary scheduling.
READY_REAL_TIME, READY = b"F", b"R"
_NAP_S = 0.1  # the longest single sleep
# Requests due within this of each other go in one write: a sender that is behind catches up
# without a system call per request.
_COALESCE_S = 20e-6
_PR_SET_TIMERSLACK = 29  # linux/prctl.h

now = time.perf_counter


def _read_exactly(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the harness closed the sender's input")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_some(fd: int, out: bytearray) -> None:
    """Write what the pipe takes now (non-blocking) and drop it from `out`."""
    try:
        while out:
            del out[: os.write(fd, out)]
    except BlockingIOError:
        pass


def real_time() -> bool:
    """Put the calling thread (on Linux the policy is a thread's; the sender has one) under
    SCHED_FIFO at priority 1, the threads and processes it starts back to the ordinary
    policy; False where it may not (no CAP_SYS_NICE) or cannot (not Linux). The driver's
    threads that hand requests on use it too."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(1))
    except (AttributeError, OSError):
        return False
    return True


def _no_timer_slack() -> None:
    """Wake from sleeps on time (Linux; elsewhere, or where refused, sleeps keep their slack)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)


def serve(read_fd: int, write_fd: int) -> None:
    _no_timer_slack()
    _write_all(write_fd, READY_REAL_TIME if real_time() else READY)
    start, count = _HEADER.unpack(_read_exactly(read_fd, _HEADER.size))
    raw = _read_exactly(read_fd, 8 * count)
    offsets = struct.unpack(f"={count}d", raw) if count else ()
    os.set_blocking(write_fd, False)
    ready = now()
    pending: list[bytes] = []
    out = bytearray()  # records the pipe had no room for yet
    for index, offset in enumerate(offsets):
        intended = start + offset
        while (delay := intended - now()) > 0:
            if out:  # wake when the pipe has room, or when this request is due
                select.select([], [write_fd], [], min(delay, _NAP_S))
                _write_some(write_fd, out)
            else:
                time.sleep(min(delay, _NAP_S))
        pending.append(RECORD.pack(index, ready, now(), time.process_time()))
        last = index + 1 == count
        if last or start + offsets[index + 1] - now() > _COALESCE_S:
            out += b"".join(pending)
            pending.clear()
            _write_some(write_fd, out)
        ready = now()
    os.set_blocking(write_fd, True)
    _write_all(write_fd, bytes(out))


def header(start: float, count: int) -> bytes:
    return _HEADER.pack(start, count)


if __name__ == "__main__":
    try:
        serve(sys.stdin.fileno(), sys.stdout.fileno())
    except (EOFError, BrokenPipeError):
        sys.exit(0)
