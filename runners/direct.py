"""`direct`: the predictor called in-process from a pool of worker threads."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bench.backends import Predictor, build_predictor
from bench.models import build_model
from runners.base import Request, Response, Runner, RunnerFacts


class DirectRunner(Runner):
    name = "direct"

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self._pool: ThreadPoolExecutor | None = None
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
        loop = asyncio.get_running_loop()
        self._pool = ThreadPoolExecutor(self.cfg.strategy.workers, thread_name_prefix="predict")
        if self._predictor is None:
            self._predictor = await loop.run_in_executor(self._pool, self._build)
        bundle = self._predictor.bundle
        await loop.run_in_executor(self._pool, self._predictor.predict, bundle.samples(1, 0))
        self._facts.cold_start_s = time.perf_counter() - started
        self._facts.predictor = self._predictor.info.as_row()

    def _build(self) -> Predictor:
        cfg = self.cfg
        return build_predictor(build_model(cfg.model), cfg.backend, cfg.optimization, cfg.cache_dir)

    def _serve(self, samples, submitted: float) -> tuple[np.ndarray, float, float]:
        began = time.perf_counter()
        output = self._predictor.predict(samples)
        return output, began - submitted, time.perf_counter() - began

    async def infer(self, request: Request) -> Response:
        loop = asyncio.get_running_loop()
        output, queue_s, compute_s = await loop.run_in_executor(
            self._pool, self._serve, request.samples, time.perf_counter()
        )
        return Response(output=output, queue_s=queue_s, compute_s=compute_s)

    async def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @property
    def facts(self) -> RunnerFacts:
        return self._facts
