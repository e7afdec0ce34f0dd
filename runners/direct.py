"""`direct`: the predictor called in-process from a pool of worker threads, optionally behind
the dynamic batcher (the serving core every strategy shares, with nothing in front of it)."""

from __future__ import annotations

import math
import time

from bench.backends import Predictor
from bench.load.sut import Complete, Request, Response, Runner, RunnerFacts
from runners.batching import Served
from runners.serving import ServingCore, build_from_config


class DirectRunner(Runner):
    name = "direct"

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self._core = ServingCore.from_strategy(cfg.strategy)
        self._predictor: Predictor | None = None
        self._facts = RunnerFacts(workers=cfg.strategy.workers, isolation="in-process")

    @classmethod
    def from_predictor(cls, cfg, predictor: Predictor) -> DirectRunner:
        """Serve an already built predictor (tests, and the harness's own benchmarks)."""
        runner = cls(cfg)
        runner._predictor = predictor
        return runner

    async def start(self) -> None:
        started = time.perf_counter()
        await self._core.start(self._predictor or (lambda: build_from_config(self.cfg)))
        self._facts.cold_start_s = time.perf_counter() - started
        self._facts.cold_start_process_s = 0.0
        self._facts.cold_start_model_load_s = self._core.model_load_s
        self._facts.cold_start_first_inference_s = self._core.first_inference_s
        self._facts.predictor = self._core.predictor.info.as_row()

    async def infer(self, request: Request) -> Response:
        return _response(await self._core.infer(request.samples))

    @property
    def issues_directly(self) -> bool:
        # The dynamic batcher forms batches on the event loop: requests go through infer().
        return self._core.max_batch_size == 1

    def issue(self, request: Request, complete: Complete) -> None:
        def served(result: Served | BaseException) -> None:
            if isinstance(result, BaseException):
                complete(result)
            else:
                complete(_response(result))

        # In this process a request reaches the server when it is sent.
        sent = None if math.isnan(request.sent) else request.sent
        self._core.submit(request.samples, served, sent, inline=request.serve_here)

    async def stop(self) -> None:
        await self._core.stop()

    @property
    def facts(self) -> RunnerFacts:
        self._facts.batch_sizes_formed = dict(self._core.batch_sizes)
        if (cache := self._core.cache) is not None:
            self._facts.strategy_facts.update(
                cache_entries=cache.entries, cache_mb=cache.bytes / 1e6
            )
        return self._facts


def _response(served: Served) -> Response:
    return Response(
        served.output,
        served.queue_s,
        served.compute_s,
        served.cache_hit,
        compute_cpu_s=served.compute_cpu_s,
    )
