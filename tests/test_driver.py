"""The load driver against predictors whose service time is known.

Tolerances are wide: these machines are shared and noisy. What is checked is that the driver
measures the right thing (which clock a latency starts from, what counts as throughput), not how
fast anything is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.load import LoadPoint
from bench.load.driver import _Sender
from bench.load.scenarios.server import poisson_offsets
from tests.synthetic import SleepPredictor, StallOncePredictor, drive


def point(**kw) -> LoadPoint:
    base = dict(
        scenario="single_stream", batch_size=1, warmup_s=0.3, duration_s=2.0, schedule_seed=1
    )
    base.update(kw)
    if base["scenario"] in ("single_stream", "concurrency") and "concurrency" not in kw:
        base["concurrency"] = 1
    return LoadPoint(**base)


def test_poisson_schedule_is_seeded_and_has_the_asked_rate():
    a = poisson_offsets(200.0, 50.0, seed=7)
    assert np.array_equal(a, poisson_offsets(200.0, 50.0, seed=7))
    assert not np.array_equal(a, poisson_offsets(200.0, 50.0, seed=8))
    assert np.all(np.diff(a) > 0) and a[-1] < 50.0
    assert len(a) / 50.0 == pytest.approx(200.0, rel=0.05)
    gaps = np.diff(a)
    # Exponential gaps: the coefficient of variation of a Poisson process is 1.
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.1)


def test_single_stream_latency_and_throughput_match_a_known_service_time():
    service = 0.010
    _, stats = drive(SleepPredictor(service), point())
    assert service * 1e3 <= stats["latency_p50_ms"] < service * 1e3 + 8
    assert stats["latency_p50_ms"] <= stats["latency_p99_ms"] <= stats["latency_max_ms"]
    # One at a time: throughput is completions over the window, near 1 / service time.
    assert 0.4 / service < stats["achieved_qps"] <= 1.0 / service
    assert stats["errors"] == 0
    assert stats["completed"] == pytest.approx(stats["achieved_qps"] * stats["window_s"])


def test_concurrency_queues_behind_a_single_worker():
    service = 0.010
    _, stats = drive(SleepPredictor(service), point(scenario="concurrency", concurrency=4))
    # Four outstanding, one worker: each request waits for about three others.
    assert stats["latency_p50_ms"] >= 3.5 * service * 1e3
    assert stats["server_queue_p50_ms"] >= 2.5 * service * 1e3
    assert stats["achieved_qps"] <= 1.0 / service


def test_server_scenario_offers_the_target_rate():
    m, stats = drive(SleepPredictor(0.002), point(scenario="server", target_qps=100.0))
    cols = m.log.columns()
    measured = (cols["intended"] >= m.window_start) & (cols["intended"] <= m.window_end)
    assert measured.sum() == pytest.approx(100.0 * (m.window_end - m.window_start), rel=0.35)
    assert stats["achieved_qps"] == pytest.approx(100.0, rel=0.35)
    assert stats["latency_p50_ms"] >= 2.0
    # Every request was sent at or after its intended time.
    assert np.all(cols["sent"] >= cols["intended"])
    # The sender ran real-time wherever a process here may (CAP_SYS_NICE), and said which.
    may = subprocess.run(
        [sys.executable, "-c", "import os; os.sched_setscheduler(0, os.SCHED_FIFO, "
         "os.sched_param(1))"], capture_output=True,
    ).returncode == 0  # fmt: skip
    assert stats["sender_real_time"] is may


def test_a_stall_shows_in_latency_from_intended_time_but_not_from_send():
    """Coordinated omission: with two client connections and a 0.5 s stall, the requests due
    during the stall are sent late. Counting from the send hides the backlog; counting from
    the intended time shows it."""
    predictor = StallOncePredictor(service_s=0.002, stall_s=0.5)
    p = point(scenario="server", target_qps=100.0, connections=2, duration_s=3.0)
    _, stats = drive(predictor, p, during=predictor.arm)
    assert stats["latency_p99_ms"] > 150.0
    assert stats["latency_max_ms"] >= 400.0
    assert stats["sent_latency_p99_ms"] < 100.0
    assert stats["blocked_send_fraction"] > 0.01


def test_offline_sends_everything_at_once_and_counts_samples():
    service = 0.004
    p = point(scenario="offline", batch_size=8, requests=150, warmup_s=0.2)
    m, stats = drive(SleepPredictor(service), p, workers=2)
    cols = m.log.columns()
    assert stats["requests"] == 150 and stats["completed"] == 150
    assert np.ptp(cols["intended"]) == 0.0
    assert stats["achieved_samples_per_s"] == pytest.approx(8 * stats["achieved_qps"])
    # Two workers: at most about two requests per service time.
    assert stats["achieved_qps"] <= 2.0 / service


def test_failing_requests_are_counted_not_raised():
    class Broken(SleepPredictor):
        calls = 0

        def forward(self, inputs):
            self.calls += 1
            if self.calls > 1:  # the runner's start-up call succeeds, then every request fails
                raise RuntimeError("model exploded")
            return super().forward(inputs)

    m, stats = drive(Broken(0.0), point(duration_s=0.5, warmup_s=0.0))
    assert stats["errors"] == stats["requests"] > 0
    assert stats["completed"] == 0
    assert "RuntimeError: model exploded" in m.log.errors


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timer slack is Linux's")
def test_the_sender_wakes_without_timer_slack():
    """Linux may wake a sleeper up to 50 us late to batch wake-ups; the sender asks for none
    (1 ns; a real-time sender has 0)."""
    sender = _Sender()
    try:
        sender.wait_ready()
        slack = Path(f"/proc/{sender.process.pid}/timerslack_ns").read_text()
    finally:
        sender.close()
    assert int(slack) <= 1
