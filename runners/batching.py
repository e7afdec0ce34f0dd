"""Dynamic batching, with the semantics of Triton's dynamic batcher.

When a predictor thread (a model instance) is free, the oldest waiting request opens a batch;
later requests join it until it holds `max_batch_size` items or `max_queue_delay_s` has passed
since that oldest request arrived, and then it runs as one predictor call whose output is split
back per request. A request is never split: one that does not fit waits for the next batch, and
one larger than `max_batch_size` runs alone. With a delay of 0 a batch is whatever queued while
every instance was busy.

The batcher knows nothing of models or sockets: it takes an async `execute(items)` function,
so it is tested with a fake one.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Executed:
    """One predictor call: its outputs (one row per item), when it began, how long it took."""

    outputs: np.ndarray
    began: float
    compute_s: float


@dataclass(frozen=True)
class Served:
    """What one request gets back, and how the server spent its time on it."""

    output: np.ndarray
    queue_s: float  # from arrival to the predictor starting on its batch
    compute_s: float  # the predictor call: preprocessing and model, for the whole batch
    batch_size: int  # items in that predictor call
    batch_requests: int  # requests in it
    # With a response cache: whether it answered (then no predictor call: queue_s is 0 and
    # compute_s the lookup), and how long hashing and looking up took; None/NaN: no cache.
    cache_hit: bool | None = None
    cache_lookup_s: float = float("nan")
    # The cache as the response left it: entries, and the bytes they hold.
    cache_entries: int = 0
    cache_bytes: int = 0
    # The CPU time of the thread that ran the predictor call, where it was timed (NaN: not):
    # a call that sleeps or waits on native threads takes less CPU than wall time.
    compute_cpu_s: float = float("nan")


Execute = Callable[[list[Any]], Awaitable[Executed]]


@dataclass(eq=False)
class _Waiting:
    items: list[Any]
    arrived: float
    future: asyncio.Future


class DynamicBatcher:
    """Forms batches from concurrent `submit()` calls and runs up to `instances` at a time."""

    def __init__(
        self,
        execute: Execute,
        max_batch_size: int,
        max_queue_delay_s: float,
        instances: int = 1,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """`clock` must be the one `execute` stamps `Executed.began` with."""
        if max_batch_size < 1 or instances < 1 or max_queue_delay_s < 0:
            raise ValueError("max_batch_size and instances must be >= 1, the delay >= 0")
        self.execute = execute
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self.clock = clock
        self._queue: deque[_Waiting] = deque()
        self._arrived = asyncio.Event()
        self._free = asyncio.Semaphore(instances)
        self._former: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()

    def start(self) -> None:
        """Start forming batches; call from the event loop that will call `submit()`."""
        self._former = asyncio.create_task(self._form(), name="dynamic-batcher")

    async def submit(self, items: Sequence[Any]) -> Served:
        if self._former is None or self._former.done():
            raise RuntimeError("the batcher is not running")
        waiting = _Waiting(list(items), self.clock(), asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        self._arrived.set()
        return await waiting.future

    async def stop(self) -> None:
        """Let batches in progress finish; fail requests still waiting."""
        if self._former is not None:
            self._former.cancel()
            await asyncio.gather(self._former, return_exceptions=True)
            self._former = None
        await asyncio.gather(*self._running, return_exceptions=True)
        while self._queue:
            waiting = self._queue.popleft()
            if not waiting.future.done():
                waiting.future.set_exception(RuntimeError("the server is stopping"))

    async def _form(self) -> None:
        while True:
            await self._free.acquire()
            try:
                batch = await self._next_batch()
            except BaseException:
                self._free.release()
                raise
            if not batch:  # every request waiting had given up
                self._free.release()
                continue
            task = asyncio.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _next_batch(self) -> list[_Waiting]:
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()
        deadline = self._queue[0].arrived + self.max_queue_delay_s
        while not self._full() and (left := deadline - self.clock()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                break
        return self._take()

    def _full(self) -> bool:
        """Whether the requests at the head of the queue fill a batch (or overflow one)."""
        total = 0
        for waiting in self._queue:
            total += len(waiting.items)
            if total >= self.max_batch_size:
                return True
        return False

    def _take(self) -> list[_Waiting]:
        batch: list[_Waiting] = []
        total = 0
        while self._queue:
            waiting = self._queue[0]
            if waiting.future.done():  # its caller was cancelled
                self._queue.popleft()
                continue
            if batch and total + len(waiting.items) > self.max_batch_size:
                break
            self._queue.popleft()
            batch.append(waiting)
            total += len(waiting.items)
            if total >= self.max_batch_size:
                break
        return batch

    async def _run(self, batch: list[_Waiting]) -> None:
        try:
            items = [item for waiting in batch for item in waiting.items]
            executed = await self.execute(items)
            if len(executed.outputs) != len(items):
                raise RuntimeError(
                    f"the predictor returned {len(executed.outputs)} rows for {len(items)} items"
                )
            offset = 0
            for waiting in batch:
                end = offset + len(waiting.items)
                if not waiting.future.done():
                    waiting.future.set_result(
                        Served(
                            output=executed.outputs[offset:end],
                            queue_s=executed.began - waiting.arrived,
                            compute_s=executed.compute_s,
                            batch_size=len(items),
                            batch_requests=len(batch),
                        )
                    )
                offset = end
        except Exception as exc:  # the batch's requests fail; the batcher goes on
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(exc)
        finally:
            self._free.release()
