"""The serving core that `direct` and every worker process share: a predictor called from a
pool of threads (the model instances), optionally behind a dynamic batcher and a response cache
in front of both, timing each request's wait and compute and counting the batch sizes it formed.

It never touches sockets: `direct` calls it in-process, the workers from their HTTP and gRPC
handlers, so the strategies differ only by what sits in front of it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
        self._pool: ThreadPoolExecutor | None = None
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
        loop = asyncio.get_running_loop()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="predict")
        if isinstance(source, Predictor):
            self.predictor = source
        else:
            began = clock()
            self.predictor = await loop.run_in_executor(self._pool, source)
            self.model_load_s = clock() - began
        first = await loop.run_in_executor(
            self._pool, self._predict, self.predictor.bundle.samples(1, 0)
        )
        self.first_inference_s = first.compute_s
        self.example_output = first.outputs
        if self.max_batch_size > 1:
            self._batcher = DynamicBatcher(
                self._execute, self.max_batch_size, self.max_queue_delay_s, self.workers, clock
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

    def submit(self, items: Sequence[Any], complete: Callable[[Served | BaseException], None]):
        """Run `items` on a predictor thread from any thread, without an event loop, and call
        `complete` there with what it served (or the exception). Not with a batcher."""
        if self._pool is None or self._batcher is not None:
            raise RuntimeError("the serving core is not started, or batches requests")
        arrived = clock()
        key, hit = self._look_up(items) if self.cache is not None else (b"", None)
        if isinstance(hit, Served):  # answered here, in the calling thread
            complete(hit)
            return
        self._pool.submit(self._serve, list(items), arrived, complete, key, hit)

    def _serve(
        self, items: list[Any], arrived: float, complete, key: bytes, lookup_s: float | None
    ) -> None:
        try:
            executed = self._predict(items)
        except Exception as exc:  # the request fails, the core goes on
            complete(exc)
            return
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
            )
        )

    async def stop(self) -> None:
        if self._batcher is not None:
            await self._batcher.stop()
            self._batcher = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def _execute(self, items: list[Any]) -> Executed:
        if self._pool is None:
            raise RuntimeError("the serving core is not started")
        executed = await asyncio.get_running_loop().run_in_executor(
            self._pool, self._predict, items
        )
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
