"""MLPerf LoadGen and the harness both drive the same runner through the adapter that the
fidelity benchmark (tests/benchmarks/test_loadgen_fidelity.py) uses, so neither side of that
check can rot. Nothing here is timed: the benchmark compares the figures."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from bench.config.strategy import BatchingConfig
from bench.load import Driver, LoadPoint, summarize
from runners.direct import DirectRunner
from tests.loadgen_sut import LoopThread, run_server
from tests.synthetic import SleepPredictor, direct_cfg


def _runner(batching: bool) -> DirectRunner:
    cfg = direct_cfg(1)
    if batching:  # the dynamic batcher serves through infer() only: the adapter's other path
        cfg.strategy.batching = OmegaConf.structured(BatchingConfig(max_batch_size=4))
    return DirectRunner.from_predictor(cfg, SleepPredictor(0.0005))


@pytest.mark.parametrize("batching", [False, True], ids=["issued", "through-infer"])
def test_loadgen_and_the_harness_both_drive_the_runner(batching):
    runner = _runner(batching)
    payloads = [runner._predictor.bundle.samples(1, i) for i in range(4)]
    point = LoadPoint("server", 1, 0.1, 1.0, schedule_seed=0, target_qps=100.0)
    assert runner.issues_directly is not batching

    loop = LoopThread()
    try:
        loop.run(runner.start())
        stats = summarize(loop.run(Driver(runner, payloads).run(point)), 3, 1e-3, 1)
        result = run_server(runner, payloads, 100.0, duration_s=1.0, loop=loop, trace=True)
    finally:
        loop.run(runner.stop())
        loop.close()
    assert stats["errors"] == 0 and stats["completed"] > 0
    assert "Completed samples per second" in result.summary
    assert result.achieved_qps > 0
    assert 0 < result.p50_ms <= result.p99_ms
    assert np.isfinite(result.mean_ms) and result.compute_p50_ms > 0
    # The arrivals LoadGen scheduled, which the benchmark has the harness replay: one a query
    # issued (at least LoadGen's minimum count), drawn from its seed exactly as LoadGen's own
    # trace has them.
    scheduled = result.scheduled_s
    assert len(scheduled) >= 100 and scheduled[0] == 0 and np.all(np.diff(scheduled) > 0)
    assert len(result.traced_s) == len(scheduled)
    assert np.abs(result.traced_s - scheduled).max() < 2e-9
