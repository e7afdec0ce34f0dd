"""The serving core that `direct` and every worker process share: a predictor called from a
pool of threads (the model instances), optionally behind a dynamic batcher and a response cache
in front of both, timing each request's wait and compute and counting the batch sizes it formed.

It never touches sockets: `direct` calls it in-process, the workers from their HTTP and gRPC
handlers, so the strategies differ only by what sits in front of it.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from bench.backends import Predictor, build_predictor
from bench.models import build_model
from runners.batching import DynamicBatcher, Executed, Served
from runners.cache import ResponseCache

clock = time.perf_counter


def build_from_config(cfg: Any) -> Predictor:
    """The predictor the config describes, built here, in this process."""
    return build_predictor(build_model(cfg.model), cfg.backend, cfg.optimization, cfg.cache_dir)


class _Instances:
    """The model instances: `count` threads taking jobs from one queue. A job is a callable
    run on one of them. Leaner than a `ThreadPoolExecutor` (no future, lock or condition per
    job; a C queue): the direct path pays this once per request.

    With one instance, a thread that submits work and is free to wait (not an event loop's)
    runs it itself when the instance is idle and no job waits, as a server's one thread serves
    the request it has just read: on this host a thread's wake-up costs some 35 us of CPU, more
    than the call of a small model, and that hand-off would be most of what the harness
    measures. A job queued before it is never overtaken."""

    def __init__(self, count: int) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        # One instance: held by whichever thread runs it, the caller's or the instance's own.
        self.one = threading.Lock() if count == 1 else None
        self.waiting = 0  # jobs queued and not yet holding `one`
        self.counting = threading.Lock()
        self.threads = [
            threading.Thread(target=self._work, name=f"predict_{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        get, one = self.jobs.get, self.one
        while (job := get()) is not None:
            try:
                if one is None:
                    job()
                else:
                    with one:
                        with self.counting:
                            self.waiting -= 1
                        job()
            except Exception:  # a broken callback must not take a model instance with it
                traceback.print_exc()

    def serve(self, job: Callable[[], None], inline: bool) -> None:
        """`job` on the instance: in the calling thread where `inline` lets it and it may (see
        the class), else queued for an instance's thread."""
        one = self.one
        # Not on an event loop (it would stall) and not while this thread holds the instance
        # (a completion that issues the next request): those queue.
        if (
            inline
            and one is not None
            and asyncio._get_running_loop() is None
            and one.acquire(False)
        ):
            try:
                if self.waiting == 0:  # read holding `one`: no queued job can be overtaken
                    job()
                    return
            finally:
                one.release()
        self._queue(job)

    def _queue(self, job: Callable[[], None]) -> None:
        if self.one is not None:
            with self.counting:
                self.waiting += 1
        self.jobs.put(job)

    def run(self, fn: Callable, *args) -> asyncio.Future:
        """`fn(*args)` on an instance, awaited from the running event loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def job() -> None:
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the awaiting coroutine
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

        self._queue(job)
        return future

    def stop(self) -> None:
        """Drop the jobs not yet begun, let those running finish, and end the threads."""
        while True:
            try:
                self.jobs.get_nowait()
            except queue.Empty:
                break
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join()


def _settle(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.done():  # the awaiting coroutine was cancelled meanwhile
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)


class ServingCore:
    """`start()` with a predictor (or a function building one), then `infer(items)` from one
    event loop, concurrently; `stop()` lets calls in progress finish."""

    def __init__(
        self,
        workers: int,
        max_batch_size: int = 1,
        max_queue_delay_ms: float = 0.0,
        cache: ResponseCache | None = None,
    ):
        self.workers = workers
        self.cache = cache
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_ms / 1e3
        self.predictor: Predictor | None = None
        self.model_load_s = 0.0  # building the predictor (0 when handed one)
        self.first_inference_s = float("nan")
        self.example_output: np.ndarray | None = None  # the first inference's, for metadata
        # Items per predictor call -> calls, and -> their seconds in all; the start-up
        # inference is not counted.
        self.batch_sizes: Counter[int] = Counter()
        self.batch_compute_s: Counter[int] = Counter()
        self._pool: _Instances | None = None
        self._counting = threading.Lock()  # the batch counters, counted from predictor threads too
        self._batcher: DynamicBatcher | None = None

    @classmethod
    def from_strategy(cls, strategy: Any) -> ServingCore:
        """A core as the strategy config says: `workers` threads, its `batching` and its
        `cache` (a strategy without those fields gets one thread, no batching, no cache)."""
        workers = getattr(strategy, "workers", 1)
        cache = ResponseCache.from_config(getattr(strategy, "cache", None))
        batching = getattr(strategy, "batching", None)
        if batching is None:
            return cls(workers, cache=cache)
        return cls(workers, batching.max_batch_size, batching.max_queue_delay_ms, cache)

    async def start(self, source: Predictor | Callable[[], Predictor]) -> None:
        """Build the predictor (timed, in the pool: the event loop stays free) and run it once
        on one sample, timed, so the first request served is not the first call."""
        self._pool = _Instances(self.workers)
        if isinstance(source, Predictor):
            self.predictor = source
        else:
            began = clock()
            self.predictor = await self._pool.run(source)
            self.model_load_s = clock() - began
        first = await self._pool.run(self._predict, self.predictor.bundle.samples(1, 0))
        self.first_inference_s = first.compute_s
        self.example_output = first.outputs
        if self.max_batch_size > 1:
            self._batcher = DynamicBatcher(
                self._execute,
                self.max_batch_size,
                self.max_queue_delay_s,
                self.workers,
                clock,
            )
            self._batcher.start()

    async def infer(self, items: Sequence[Any]) -> Served:
        if self.cache is None:
            return await self._infer(items)
        key, hit = self._look_up(items)
        if isinstance(hit, Served):
            return hit
        served = await self._infer(items)
        self.cache.put(key, served.output)
        return replace(served, cache_hit=False, cache_lookup_s=hit)

    async def _infer(self, items: Sequence[Any]) -> Served:
        if self._batcher is not None:
            return await self._batcher.submit(items)
        arrived = clock()
        executed = await self._execute(list(items))
        return Served(
            output=executed.outputs,
            queue_s=executed.began - arrived,
            compute_s=executed.compute_s,
            batch_size=len(items),
            batch_requests=1,
        )

    def _look_up(self, items: Sequence[Any]) -> tuple[bytes, Served | float]:
        """The request's cache key, and what the cache answered: the response, or on a miss
        the seconds the lookup took."""
        began = clock()
        key = self.cache.key(items)
        output = self.cache.get(key)
        took = clock() - began
        if output is None:
            return key, took
        served = Served(output, 0.0, took, len(items), 1, cache_hit=True, cache_lookup_s=took)
        return key, served

    def submit(
        self,
        items: Sequence[Any],
        complete: Callable[[Served | BaseException], None],
        arrived: float | None = None,
        inline: bool = False,
    ):
        """Run `items` on a model instance from any thread, without an event loop, and call
        `complete` in the thread that ran it with what it served (or the exception).
        `arrived`: when the request reached the server (default now), its queue time counted
        from then. `inline`: the calling thread may serve it itself (see `_Instances`); only a
        caller that nothing else waits on may say so. Not with a batcher."""
        if self._pool is None or self._batcher is not None:
            raise RuntimeError("the serving core is not started, or batches requests")
        arrived = clock() if arrived is None else arrived
        key, hit = self._look_up(items) if self.cache is not None else (b"", None)
        if isinstance(hit, Served):  # answered here, in the calling thread
            complete(hit)
            return
        items = list(items)
        self._pool.serve(lambda: self._serve(items, arrived, complete, key, hit), inline)

    def _serve(
        self,
        items: list[Any],
        arrived: float,
        complete,
        key: bytes,
        lookup_s: float | None,
    ) -> None:
        cpu = time.thread_time()
        try:
            executed = self._predict(items)
        except Exception as exc:  # the request fails, the core goes on
            complete(exc)
            return
        cpu = time.thread_time() - cpu
        self._count(len(items), executed)
        if lookup_s is not None:
            self.cache.put(key, executed.outputs)
        complete(
            Served(
                output=executed.outputs,
                queue_s=executed.began - arrived,
                compute_s=executed.compute_s,
                batch_size=len(items),
                batch_requests=1,
                cache_hit=None if lookup_s is None else False,
                cache_lookup_s=float("nan") if lookup_s is None else lookup_s,
                compute_cpu_s=cpu,
            )
        )

    async def stop(self) -> None:
        if self._batcher is not None:
            await self._batcher.stop()
            self._batcher = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.get_running_loop().run_in_executor(None, pool.stop)

    async def _execute(self, items: list[Any]) -> Executed:
        if self._pool is None:
            raise RuntimeError("the serving core is not started")
        executed = await self._pool.run(self._predict, items)
        self._count(len(items), executed)
        return executed

    def batch_counts(self) -> dict[int, int]:
        """Items per predictor call -> calls, as counted so far (a copy; any thread)."""
        with self._counting:
            return dict(self.batch_sizes)

    def _count(self, items: int, executed: Executed) -> None:
        with self._counting:
            self.batch_sizes[items] += 1
            self.batch_compute_s[items] += executed.compute_s

    def _predict(self, items: Sequence[Any]) -> Executed:
        began = clock()
        outputs = self.predictor.predict(items)
        return Executed(outputs, began, clock() - began)
