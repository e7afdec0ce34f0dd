"""Predictors with a known service time, and a helper that drives one load point through the
real driver, direct runner and statistics."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
from omegaconf import OmegaConf

from bench.backends import Predictor, PredictorInfo
from bench.config import BenchConfig
from bench.config.model import MLPConfig
from bench.config.strategy import DirectStrategyConfig
from bench.load import Driver, LoadPoint, summarize
from bench.models import build_model
from bench.models.busy import spend
from runners.direct import DirectRunner


class SleepPredictor(Predictor):
    """Takes `service_s` per call (sleeping, so the GIL is free), then returns zeros."""

    def __init__(self, service_s: float) -> None:
        super().__init__(build_model(MLPConfig(in_features=4, hidden=[4], out_features=2)))
        self.service_s = service_s

    @property
    def info(self) -> PredictorInfo:
        return PredictorInfo("synthetic", "sleep", "fp32", 0, 0, 1)

    def forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        if self.service_s:
            time.sleep(self.service_s)
        return np.zeros((len(inputs["features"]), 2), dtype=np.float32)


class BusyPredictor(SleepPredictor):
    """Takes `service_s` per call busy in Python on its core (the GIL held), then returns
    zeros."""

    def forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        spend(self.service_s, holds_gil=True)
        return np.zeros((len(inputs["features"]), 2), dtype=np.float32)


class StallOncePredictor(SleepPredictor):
    """Like SleepPredictor, but the first call after `arm()` stalls for `stall_s`."""

    def __init__(self, service_s: float, stall_s: float) -> None:
        super().__init__(service_s)
        self.stall_s = stall_s
        self._armed = threading.Event()

    def arm(self) -> None:
        self._armed.set()

    def forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        if self._armed.is_set():
            self._armed.clear()
            time.sleep(self.stall_s)
        return super().forward(inputs)


def direct_cfg(workers: int = 1):
    cfg = OmegaConf.structured(BenchConfig)
    cfg.strategy = OmegaConf.structured(DirectStrategyConfig(workers=workers))
    return cfg


def drive(predictor: Predictor, point: LoadPoint, workers: int = 1, during=None):
    """Run `point` against `predictor` served directly; `during(loop)` runs once the measured
    window has begun. Returns (measurement, stats)."""

    async def main():
        runner = DirectRunner.from_predictor(direct_cfg(workers), predictor)
        await runner.start()
        driver = Driver(runner, [predictor.bundle.samples(point.batch_size, 0)])
        try:
            if during is not None:
                loop = asyncio.get_running_loop()
                loop.call_later(point.warmup_s + point.duration_s / 3, during)
            return await driver.run(point)
        finally:
            await runner.stop()

    measurement = asyncio.run(main())
    return measurement, summarize(measurement, 3, 1e-3, point.batch_size)
