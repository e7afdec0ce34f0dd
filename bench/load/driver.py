"""Issue requests to a runner as a load point says, and record when each was meant to go,
went and came back.

Open-loop sends are paced by a sender process of its own (`bench.load.sender`), sleeping with
`time.sleep` (sub-millisecond on Linux; asyncio's timers round to whole milliseconds, which
made a third of sends at 100 qps over 1 ms late here) and saying over a pipe which request to
send when: no Python code of this process, a model's included, can delay the schedule or its
timing. Closed-loop workers send the next request as soon as the previous returns. Nothing
here spins: every wait is a sleep, a blocking read or an await.

Two ways to hand a request over, one flow of callbacks over both:
- a runner that `issues_directly` (in-process: `direct`) gets each request from the thread
  that reads the sender's pipe, and says when it is done from the thread that served it: the
  event loop takes no part in a request, so a model holding the GIL in this process waits for
  the harness no more than it would for a client's request, and no timestamp waits for the
  loop (LoadGen's IssueQuery and QuerySamplesComplete);
- any other runner gets `await infer()` on the event loop, the reader handing each request to
  the loop. For an open-loop point the loop's thread and the reader run under SCHED_FIFO 1,
  as the sender does (`_prompt`): a client is not on the server it loads, and beside a worker
  whose intra-op threads filled both cores of this host, the loop began 2-13% of MiniLM's
  requests over HTTP more than 1 ms after the sender said, and every point of the tiers
  experiment was INVALID for it. The threads they start do not inherit the policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.load.log import Measurement, RequestLog
from bench.load.payloads import Payloads
from bench.load.points import LoadPoint
from bench.load.scenarios import shape_of
from bench.load.sender import READY, READY_REAL_TIME, RECORD, header, real_time
from bench.load.shapes import Burst, ClosedLoop, OpenLoop
from bench.load.sut import Request, Response, Runner

now = time.perf_counter

# Offline sizes its burst from the warm-up rate with this many requests outstanding.
_OFFLINE_WARMUP_CONCURRENCY = 4
# The sender process gets its schedule this long before the first send is due.
_SENDER_LEAD_S = 0.05
_SENDER_START_TIMEOUT_S = 30.0

OnDone = Callable[[int], None]

# The most CPU a model call may take for the pipe's reader to serve it itself
# (`Request.serve_here`). The reader, woken by the sender's write, is placed by the scheduler
# on the sender's core; a call it serves there holds the sender off that core for as long as
# it runs on it. With a model taking 2 ms in Python at 400 requests/s, 5.9% of sends went over
# 1 ms late (p99 3.1 ms) while the reader served inline, 0% (p99 0.25 ms) with every call
# handed to the model's thread (a sender of ordinary priority; a real-time one preempts the
# reader). A call that sleeps, or waits on I/O or native threads, leaves the core free: it is
# judged by the CPU time its thread took, where the runner timed it (else by its wall time).
# A 2 ms sleep in the model took 40 us of CPU alone and 90-160 us (p99 0.4-0.5 ms) beside the
# load here; under this limit the sender is held off its core for at most a quarter of the
# 1 ms that makes a send late, and the reader saves the hand-off (a thread's wake-up: from the
# reader's call to the model beginning, p50 70 us handed off, 20 us served in the reader).
_INLINE_MAX_S = 250e-6


class _Sender:
    """The sender process (`bench.load.sender`) of one open-loop point: started, given the
    schedule, its records read as they come."""

    def __init__(self) -> None:
        # The interpreter running the harness, importing this very `bench`, wherever it is.
        found = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(filter(None, [found, os.environ.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.load.sender"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )

    def wait_ready(self) -> bool:
        """Wait for the sender to start; whether it runs under the real-time policy."""
        found = os.read(self.process.stdout.fileno(), 1)
        if found not in (READY_REAL_TIME, READY):
            raise RuntimeError(f"the load sender did not start: {self.errors()}")
        return found == READY_REAL_TIME

    def schedule(self, start: float, offsets: np.ndarray) -> None:
        stdin = self.process.stdin
        stdin.write(header(start, len(offsets)))
        stdin.write(np.ascontiguousarray(offsets, dtype=np.float64).tobytes())
        stdin.flush()

    def records(self) -> Iterator[list[tuple[int, float, float, float]]]:
        """(index, ready, dispatched, sender CPU seconds) of each request as the sender sends
        it, until it ends: a list of those one read found (more than one: the reader is
        behind)."""
        fd, left = self.process.stdout.fileno(), b""
        while chunk := os.read(fd, 1 << 16):
            data = left + chunk
            whole = len(data) - len(data) % RECORD.size
            if whole:
                yield list(RECORD.iter_unpack(data[:whole]))
            left = data[whole:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def errors(self) -> str:
        """What the stopped process wrote to stderr (its last lines)."""
        self.stop()
        return self.process.stderr.read().decode(errors="replace").strip()[-500:] or "no output"

    def close(self) -> None:
        self.stop()
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            pipe.close()


class _Gate:
    """At most `limit` requests out at once (client connections); the rest wait in order.
    Thread-safe: requests may enter from the pipe's reader and leave from a predictor thread."""

    def __init__(self, limit: int) -> None:
        self.free = limit
        self.waiting: deque[int] = deque()
        self.lock = threading.Lock()

    def enter(self, index: int) -> bool:
        """True: go now; False: queued, `leave` hands it on when a connection frees."""
        with self.lock:
            if self.free > 0:
                self.free -= 1
                return True
            self.waiting.append(index)
            return False

    def leave(self) -> int | None:
        """A request is done: the next waiting one, which now holds its connection."""
        with self.lock:
            if self.waiting:
                return self.waiting.popleft()
            self.free += 1
            return None


@contextlib.contextmanager
def _prompt(wanted: bool) -> Iterator[None]:
    """The calling thread real-time (`sender.real_time`) while the block runs, if `wanted`."""
    raised = wanted and real_time()
    try:
        yield
    finally:
        if raised:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


class _Issue:
    """One load point's requests in flight: starts each (through `issue` or `infer`), records
    its outcome in the log, and says when every request started has come back."""

    def __init__(
        self,
        driver: Driver,
        log: RequestLog,
        loop: asyncio.AbstractEventLoop,
        first: int = 0,
    ) -> None:
        """`first`: the payload of the log's request 0 (the requests before went in another
        log: an offline point's warm-up)."""
        self.driver = driver
        self.first = first
        self.runner = driver.runner
        self.log = log
        self.loop = loop
        self.direct = bool(self.runner.issues_directly)
        self.lock = threading.Lock()  # the log, written from several threads on the direct path
        self.closed = False  # after the drain timeout nothing more is recorded
        self.outstanding = 0
        self.all_started = False
        self.idle = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()
        # The last answer's model call took little enough CPU to serve in the pipe's reader.
        self.short = True

    def new(
        self,
        intended: float,
        dispatched: float | None = None,
        ready: float | None = None,
        sender_cpu: float = math.nan,
    ) -> int:
        """A slot for the next request, dispatched now unless `dispatched` says when."""
        with self.lock:
            self.outstanding += 1
            dispatched = now() if dispatched is None else dispatched
            return self.log.new(intended, dispatched, ready, sender_cpu)

    def issue_sent(
        self,
        intended: float,
        dispatched: float,
        ready: float,
        sender_cpu: float,
        caught_up: bool,
    ) -> None:
        """The direct path of an open loop with no connection limit, as one step per request
        (the harness's hot path at high rates): a slot for the request the sender dispatched,
        handed to the runner from this (the pipe reader's) thread, started and sent when the
        sender dispatched it. `caught_up`: no later request is waiting to be read, so the
        runner may serve this one in this thread (`Request.serve_here`) if the model's last
        call took under `_INLINE_MAX_S` of CPU."""
        log = self.log
        with self.lock:
            self.outstanding += 1
            index = log.new(intended, dispatched, ready, sender_cpu)
            log.started[index] = log.sent[index] = dispatched
        payload = self.driver.payloads[self.first + index]
        request = Request(index, payload, dispatched, caught_up and self.short)
        try:
            self.runner.issue(request, functools.partial(self._finish, index))
        except Exception as exc:  # later, from the loop, as `_transmit` does
            self.loop.call_soon_threadsafe(self._finish, index, exc)

    def _finish(self, index: int, result: Response | BaseException) -> None:
        """`_record` and `_settle` under one lock: request `index` came back now."""
        done = now()
        if not isinstance(result, BaseException):
            cost = result.compute_s if math.isnan(result.compute_cpu_s) else result.compute_cpu_s
            self.short = not cost >= _INLINE_MAX_S  # NaN (not timed): short
        with self.lock:
            self._record_locked(index, done, result)
            self.outstanding -= 1
            idle = self.all_started and self.outstanding == 0
        if idle:
            self.loop.call_soon_threadsafe(self.idle.set)

    def start(self, index: int, on_done: OnDone, gate: _Gate | None = None) -> None:
        """Begin request `index`: from the thread that got it (direct) or the event loop."""
        with self.lock:  # handed to the runner as it came from the sender: started then
            started = self.log.dispatched[index] if self.direct else now()
            self.log.started[index] = started
        if gate is None or gate.enter(index):
            self._transmit(index, on_done, gate, started)

    def _transmit(
        self, index: int, on_done: OnDone, gate: _Gate | None, at: float | None = None
    ) -> None:
        """Send request `index` to the runner, at `at` (None: now, after waiting for a
        connection)."""
        request = Request(index, self.driver.payloads[self.first + index])

        def finished(result: Response | BaseException) -> None:
            self._record(index, now(), result)
            if gate is not None and (queued := gate.leave()) is not None:
                self._transmit(queued, on_done, gate)
            on_done(index)
            self._settle()

        with self.lock:
            self.log.sent[index] = now() if at is None else at
        if self.direct:
            try:
                self.runner.issue(request, finished)
            except Exception as exc:  # later, from the loop: a closed loop would recurse
                self.loop.call_soon_threadsafe(finished, exc)
            return
        task = self.loop.create_task(self._exchange(request))
        self.tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(t, finished))

    async def _exchange(self, request: Request) -> Response | BaseException:
        try:
            return await self.runner.infer(request)
        except Exception as exc:  # a failed request is a result, not a crash of the point
            return exc

    def _task_done(self, task: asyncio.Task, finished: Callable) -> None:
        self.tasks.discard(task)
        if not task.cancelled():
            finished(task.result())

    def _record(self, index: int, done: float, result: Response | BaseException) -> None:
        with self.lock:
            self._record_locked(index, done, result)

    def _record_locked(self, index: int, done: float, result: Response | BaseException) -> None:
        if self.closed:
            return
        log = self.log
        if isinstance(result, BaseException):
            log.fail(index, done, f"{type(result).__name__}: {result}"[:200])
        else:
            log.done[index] = done
            log.ok[index] = True
            log.queue_s[index] = result.queue_s
            log.compute_s[index] = result.compute_s
            if result.cache_hit is not None:
                log.cache_hit[index] = float(result.cache_hit)
            if result.tokens is not None:
                log.tokens(index, result.tokens)
        self.driver._completed += 1

    def _settle(self) -> None:
        with self.lock:
            self.outstanding -= 1
            idle = self.all_started and self.outstanding == 0
        if idle:
            self.loop.call_soon_threadsafe(self.idle.set)

    def no_more(self) -> None:
        """Every request of the point has been created: `drain` may end once they are back."""
        with self.lock:
            self.all_started = True
            idle = self.outstanding == 0
        if idle:
            self.loop.call_soon_threadsafe(self.idle.set)

    async def drain(self, timeout_s: float) -> None:
        """Wait for requests in flight; those still out after `timeout_s` are errors."""
        try:
            await asyncio.wait_for(self.idle.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass
        with self.lock:
            self.closed = True
            log = self.log
            for index in range(log.size):
                if math.isnan(log.done[index]):
                    log.fail(index, math.nan, f"timeout: no response {timeout_s:g} s after")
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


class Driver:
    """Runs one load point against a started runner."""

    def __init__(
        self,
        runner: Runner,
        batches: Sequence[Sequence[Any]] | Payloads,
        drain_timeout_s: float = 30.0,
        on_progress: Callable[[float, int], None] | None = None,
    ) -> None:
        """`batches`: each request's payload (`Payloads`), or a list of them used in turn;
        `on_progress(elapsed_s, done)` is called about twice a second while the point runs."""
        self.runner = runner
        self.payloads = batches if isinstance(batches, Payloads) else Payloads.cycle(batches)
        self.drain_timeout_s = drain_timeout_s
        self.on_progress = on_progress
        self._completed = 0

    async def run(self, point: LoadPoint) -> Measurement:
        self._completed = 0
        ticker = asyncio.create_task(self._tick(now()))
        shape = shape_of(point)
        try:
            if isinstance(shape, ClosedLoop):
                return await self._closed_loop(point, shape)
            if isinstance(shape, OpenLoop):
                return await self._open_loop(point, shape)
            if isinstance(shape, Burst):
                return await self._offline(point, shape)
            raise TypeError(f"scenario {point.scenario}: the driver has no {shape!r} load")
        finally:
            ticker.cancel()

    # --- the load shapes: closed loop, open loop on a schedule, offline ----------------------

    async def _closed_loop(self, point: LoadPoint, shape: ClosedLoop) -> Measurement:
        log = RequestLog()
        start = now()
        window_start = start + point.warmup_s
        window_end = window_start + point.duration_s
        await self._closed_workers(log, shape.concurrency, start, window_end)
        return Measurement(log, window_start, window_end)

    async def _closed_workers(
        self, log: RequestLog, concurrency: int, start: float, stop_at: float
    ) -> None:
        """`concurrency` requests out at once, each sent as soon as the one before returns,
        until `stop_at`; then wait for the last ones."""
        issue = _Issue(self, log, asyncio.get_running_loop())
        workers = concurrency

        def next_one(index: int) -> None:
            nonlocal workers
            intended = log.done[index]
            if intended < stop_at:  # a failed request has done NaN: that worker stops
                issue.start(issue.new(intended), next_one)
                return
            with issue.lock:
                workers -= 1
                last = workers == 0
            if last:
                issue.no_more()

        for _ in range(concurrency):
            issue.start(issue.new(start), next_one)
        await issue.drain(max(stop_at - now(), 0.0) + self.drain_timeout_s)

    async def _open_loop(self, point: LoadPoint, shape: OpenLoop) -> Measurement:
        """Send a request at each of the shape's offsets (seconds from the start, warm-up
        included), when the sender process says."""
        offsets = shape.offsets
        self.payloads.prepare(len(offsets))
        log = RequestLog(capacity=len(offsets) + 1)
        loop = asyncio.get_running_loop()
        issue = _Issue(self, log, loop)
        gate = _Gate(shape.connections) if shape.connections else None
        fast = issue.direct and gate is None
        all_sent = asyncio.Event()
        received = 0

        def ignore(_: int) -> None: ...

        def receive(start: float) -> None:
            nonlocal received
            if not issue.direct:  # the direct path serves requests in this thread
                real_time()
            try:
                for found in sender.records():
                    last = found[-1][0]
                    for index, ready, dispatched, cpu in found:
                        if fast:  # served here only when caught up: a backlog is queued
                            intended = start + offsets[index]
                            issue.issue_sent(intended, dispatched, ready, cpu, index == last)
                        else:
                            issue.new(start + offsets[index], dispatched, ready, cpu)
                            if issue.direct:
                                issue.start(index, ignore, gate)
                            else:
                                loop.call_soon_threadsafe(issue.start, index, ignore, gate)
                    received += len(found)
            finally:
                loop.call_soon_threadsafe(all_sent.set)

        sender = _Sender()
        reader: threading.Thread | None = None
        with _prompt(not issue.direct):
            try:
                sender_real_time = await asyncio.wait_for(
                    loop.run_in_executor(None, sender.wait_ready), _SENDER_START_TIMEOUT_S
                )
                start = now() + _SENDER_LEAD_S
                reader = threading.Thread(target=receive, args=(start,), name="load-receiver")
                reader.start()
                await loop.run_in_executor(None, sender.schedule, start, offsets)
                await all_sent.wait()
                if received < len(offsets):
                    raise RuntimeError(
                        f"the load sender stopped after {received} of {len(offsets)} requests: "
                        f"{sender.errors()}"
                    )
                issue.no_more()
                await issue.drain(self.drain_timeout_s)
            finally:
                sender.stop()
                if reader is not None:
                    reader.join()
                sender.close()
        window_start = start + point.warmup_s
        return Measurement(
            log,
            window_start,
            window_start + point.duration_s,
            connections=shape.connections,
            sender_real_time=sender_real_time,
        )

    async def _offline(self, point: LoadPoint, shape: Burst) -> Measurement:
        warm = RequestLog()
        if point.warmup_s > 0:
            began = now()
            await self._closed_workers(
                warm, _OFFLINE_WARMUP_CONCURRENCY, began, began + point.warmup_s
            )
        count = shape.requests
        if count is None:
            finished = warm.done[: warm.size]
            rate = warm.size / max(finished.max() - warm.intended[0], 1e-9) if warm.size else 1.0
            count = max(1, math.ceil(rate * point.duration_s))
        self.payloads.prepare(warm.size + count)
        log = RequestLog(capacity=count)
        issue = _Issue(self, log, asyncio.get_running_loop(), first=warm.size)
        burst = now()
        for _ in range(count):
            issue.start(issue.new(burst), lambda _: None)
        issue.no_more()
        await issue.drain(self.drain_timeout_s)
        done = log.done[: log.size]
        return Measurement(
            log, burst, float(max(done.max(), burst + 1e-9)), open_ended=True,
            first_payload=warm.size,
        )  # fmt: skip

    async def _tick(self, began: float) -> None:
        if self.on_progress is None:
            return
        while True:
            self.on_progress(now() - began, self._completed)
            await asyncio.sleep(0.5)
