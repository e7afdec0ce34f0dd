"""Issue requests to a runner as a load point says, and record when each was meant to go,
went and came back.

Open-loop sends are paced by a dedicated thread with `time.sleep` (sub-millisecond on Linux)
handing each request to the event loop: asyncio's own timers round to whole milliseconds, which
made a third of sends at 100 qps over 1 ms late here. Closed-loop workers send the next request
as soon as the previous returns. Nothing here spins: every wait is a sleep or an await.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.load.log import Measurement, RequestLog
from bench.load.points import LoadPoint
from bench.load.scenarios import shape_of
from bench.load.shapes import Burst, ClosedLoop, OpenLoop
from bench.load.sut import Request, Runner

now = time.perf_counter

# Offline sizes its burst from the warm-up rate with this many requests outstanding.
_OFFLINE_WARMUP_CONCURRENCY = 4
_SENDER_NAP_S = 0.1  # the sender thread wakes at least this often to see a stop


class Driver:
    """Runs one load point against a started runner."""

    def __init__(
        self,
        runner: Runner,
        batches: Sequence[Sequence[Any]],
        drain_timeout_s: float = 30.0,
        on_progress: Callable[[float, int], None] | None = None,
    ) -> None:
        """`batches` are the requests' payloads, used in turn; `on_progress(elapsed_s, done)`
        is called about twice a second while the point runs."""
        if not batches:
            raise ValueError("batches: need at least one batch of samples to send")
        self.runner = runner
        self.batches = batches
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
        async def worker() -> None:
            intended = start
            while intended < stop_at:
                index = log.new(intended, now())
                await self._send(log, index)
                intended = log.done[index]

        # A request still out this long after the last send is a timeout (as in `_drain`): a
        # server that stops answering ends the point instead of holding it open.
        limit = max(0.0, stop_at - now()) + self.drain_timeout_s
        try:
            await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), limit)
        except asyncio.TimeoutError:
            self._time_out(log)

    async def _open_loop(self, point: LoadPoint, shape: OpenLoop) -> Measurement:
        """Send a request at each of the shape's offsets (seconds from the start, warm-up
        included)."""
        offsets = shape.offsets
        log = RequestLog(capacity=len(offsets) + 1)
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task] = set()
        all_sent = asyncio.Event()
        connections = asyncio.Semaphore(shape.connections) if shape.connections else None
        stop = threading.Event()
        # Start a little ahead so the first sends are not late by the thread's start-up.
        start = now() + 0.02

        def launch(intended: float, last: bool) -> None:
            task = loop.create_task(self._send(log, log.new(intended, now()), connections))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if last:
                all_sent.set()

        def pace() -> None:
            for i, offset in enumerate(offsets):
                intended = start + offset
                while (delay := intended - now()) > 0:
                    if stop.is_set():
                        return
                    time.sleep(min(delay, _SENDER_NAP_S))
                loop.call_soon_threadsafe(launch, intended, i == len(offsets) - 1)

        sender = threading.Thread(target=pace, name="load-sender", daemon=True)
        sender.start()
        try:
            if len(offsets):
                await all_sent.wait()
            await self._drain(log, tasks)
        finally:
            stop.set()
            sender.join()
        window_start = start + point.warmup_s
        return Measurement(log, window_start, window_start + point.duration_s)

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
        log = RequestLog(capacity=count)
        burst = now()
        tasks = {asyncio.create_task(self._send(log, log.new(burst, now()))) for _ in range(count)}
        await self._drain(log, tasks)
        done = log.done[: log.size]
        return Measurement(log, burst, float(max(done.max(), burst + 1e-9)), open_ended=True)

    # --- one request ---------------------------------------------------------------------------

    async def _send(
        self, log: RequestLog, index: int, connections: asyncio.Semaphore | None = None
    ) -> None:
        if connections is None:
            await self._exchange(log, index)
        else:
            async with connections:
                await self._exchange(log, index)

    async def _exchange(self, log: RequestLog, index: int) -> None:
        request = Request(index, self.batches[index % len(self.batches)])
        log.sent[index] = now()
        try:
            response = await self.runner.infer(request)
        except Exception as exc:  # a failed request is a result, not a crash of the point
            log.fail(index, now(), f"{type(exc).__name__}: {exc}"[:200])
        else:
            log.done[index] = now()
            log.ok[index] = True
            log.queue_s[index] = response.queue_s
            log.compute_s[index] = response.compute_s
        self._completed += 1

    async def _drain(self, log: RequestLog, tasks: set[asyncio.Task]) -> None:
        """Wait for requests in flight; those still out after the drain timeout are errors."""
        pending = set(tasks)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=self.drain_timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            self._time_out(log)

    def _time_out(self, log: RequestLog) -> None:
        """Every request without a response yet is an error: a timeout."""
        late = [i for i in range(log.size) if math.isnan(log.done[i])]
        for index in late:
            log.fail(index, math.nan, f"timeout: no response {self.drain_timeout_s:g} s after")

    async def _tick(self, began: float) -> None:
        if self.on_progress is None:
            return
        while True:
            self.on_progress(now() - began, self._completed)
            await asyncio.sleep(0.5)
