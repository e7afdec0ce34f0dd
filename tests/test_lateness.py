"""Late sends name their culprit: the generator, the host, the harness's own process, or a
stall of the system under test. Pure functions first, then the driver against real runners."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import numpy as np
import pytest

from bench.load import Driver, LoadPoint, judge, summarize
from bench.load.lateness import lateness, sut_stalls
from bench.load.scenarios.server import ServerScenarioConfig
from bench.load.sender import real_time
from bench.load.sut import Request, Response, Runner, RunnerFacts
from runners.direct import DirectRunner
from tests.synthetic import BusyPredictor, SleepPredictor, direct_cfg

_MS = 1e-3


def _columns(intended, ready, dispatched, started, sent, done, sender_cpu):
    cols = dict(intended=intended, ready=ready, dispatched=dispatched, started=started)
    cols |= {"sent": sent, "done": done, "sender_cpu": sender_cpu}
    return {k: np.asarray(v, dtype=float) for k, v in cols.items()}


def test_each_late_request_is_blamed_on_the_step_that_held_it():
    t = np.arange(5) * 0.01
    cols = _columns(
        intended=t,
        # 0: on time; 1: the sender at work until 3 ms after; 2: ready in time, woke 3 ms
        # late; 3: sent in time, the harness's process began it 3 ms later; 4: the sender
        # ready 3 ms late having worked 0.5 ms of it (2.5 ms waiting for a core).
        ready=t + [0, 3 * _MS, 0, 0, 3 * _MS],
        dispatched=t + [0, 3 * _MS, 3 * _MS, 0, 3 * _MS],
        started=t + [0, 3 * _MS, 3 * _MS, 3 * _MS, 3 * _MS],
        sent=t + [0, 3 * _MS, 3 * _MS, 3 * _MS, 3 * _MS],
        done=t + 5 * _MS,
        sender_cpu=np.cumsum([0, 5 * _MS, 0, 0, 0.5 * _MS]),
    )
    row = lateness(cols, np.ones(5, dtype=bool), 1e-3)
    assert row["late_send_fraction"] == 0.8
    assert row["late_generator_fraction"] == row["late_process_fraction"] == 0.2
    assert row["late_host_fraction"] == 0.4
    assert row["late_sut_fraction"] == 0.0 and row["sut_stalls"] == 0


def test_a_gap_in_responses_is_a_stall_only_while_a_request_is_out():
    sent = np.array([0.0, 0.01, 0.02, 1.5])
    # The third request is out from 0.02 s and answered at 1.2 s: a stall of the server.
    done = np.array([0.005, 0.015, 1.2, 1.505])
    assert sut_stalls(sent, done) == [(0.02, 1.2)]
    # The same silence with nothing out (the client sent nothing) is no stall.
    idle = np.array([0.0, 0.01, 1.19, 1.5])
    assert sut_stalls(idle, idle + 0.005) == []


class _StallingRunner(Runner):
    """Answers after `service_s` on the event loop; from `stall()` on, holds every answer for
    `stall_s` and then gives them all at once, each costing the loop `answer_cost_s` (a client
    parsing a response), as a server that stalls and then flushes its backlog."""

    name = "stalling"

    def __init__(self, stall_s: float, answer_cost_s: float) -> None:
        self.stall_s, self.answer_cost_s = stall_s, answer_cost_s
        self._released: asyncio.Event | None = None

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def stall(self) -> None:
        self._released = asyncio.Event()
        asyncio.get_running_loop().call_later(self.stall_s, self._released.set)

    async def infer(self, request: Request) -> Response:
        released = self._released
        if released is not None and not released.is_set():
            await released.wait()
            end = time.perf_counter() + self.answer_cost_s
            while time.perf_counter() < end:
                pass
        else:
            await asyncio.sleep(0.001)
        return Response(np.zeros(1, np.float32), 0.0, 0.0)

    @property
    def facts(self) -> RunnerFacts:
        return RunnerFacts()


def test_sends_delayed_behind_a_servers_burst_are_blamed_on_the_server():
    """The server stalls 1 s, then answers every request held at once; the sends due while
    the loop handles that burst go late. The point blames the stall, not the generator."""
    runner = _StallingRunner(stall_s=1.0, answer_cost_s=0.0005)
    point = LoadPoint("server", 1, 0.2, 3.0, schedule_seed=2, target_qps=300.0)

    async def main():
        asyncio.get_running_loop().call_later(1.0, runner.stall)
        return await Driver(runner, [[np.zeros(1, np.float32)]]).run(point)

    stats = summarize(asyncio.run(main()), 3, 1e-3, 1)
    assert stats["sut_stalls"] >= 1 and stats["sut_stall_max_s"] > 0.5
    # The burst's late sends are the server's, and outnumber any the generator made itself.
    assert stats["late_sut_fraction"] > stats["late_generator_fraction"]
    check = {c.name: c for c in judge(stats, ServerScenarioConfig()).checks}["generator"]
    assert check.passed or not check.reason.startswith("generator fell behind")


def test_a_served_runner_is_issued_by_real_time_threads_during_an_open_loop_point():
    """A client is not on the server it loads: during an open-loop point of a served runner
    the event loop's thread (and the pipe's reader that hands it each request) run under
    SCHED_FIFO where this process may, and the loop's thread is ordinary again after."""

    class Recording(_StallingRunner):
        policies: list[int] = []

        async def infer(self, request: Request) -> Response:
            self.policies.append(os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK)
            return await super().infer(request)

    allowed: list[bool] = []  # whether this process may: tried in a thread of its own
    trial = threading.Thread(target=lambda: allowed.append(real_time()))
    trial.start()
    trial.join()
    runner = Recording(stall_s=0.0, answer_cost_s=0.0)
    point = LoadPoint("server", 1, 0.0, 0.3, schedule_seed=0, target_qps=100.0)

    async def main():
        return await Driver(runner, [[np.zeros(1, np.float32)]]).run(point)

    asyncio.run(main())
    expected = os.SCHED_FIFO if allowed[0] else os.SCHED_OTHER
    assert runner.policies and set(runner.policies) == {expected}
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


@pytest.mark.parametrize(
    ("kind", "service_s"),
    [(SleepPredictor, 0.0), (SleepPredictor, 0.0005), (BusyPredictor, 0.0005)],
    ids=["instant", "sleeping", "busy"],
)
def test_an_in_process_runner_gets_each_request_from_the_sender_pipes_reader(kind, service_s):
    """`direct` serves in this process: the event loop takes no part in its requests, and the
    schedule is kept by a process of its own. The pipe's reader serves a model call itself
    while the calls take little CPU (an instant one, or one that sleeps 0.5 ms); a call busy
    on its core for 0.5 ms it hands to the model's thread, since the reader runs on the
    sender's core and would hold the sender off it."""
    threads: set[str] = set()
    served_in: list[str] = []

    class Recording(DirectRunner):
        def issue(self, request, complete):
            threads.add(threading.current_thread().name)

            def completed(result):
                served_in.append(threading.current_thread().name)
                complete(result)

            super().issue(request, completed)

    predictor = kind(service_s)
    runner = Recording.from_predictor(direct_cfg(1), predictor)
    point = LoadPoint("server", 1, 0.1, 0.5, schedule_seed=0, target_qps=200.0)

    async def main():
        await runner.start()
        try:
            return await Driver(runner, [predictor.bundle.samples(1, 0)]).run(point)
        finally:
            await runner.stop()

    measurement = asyncio.run(main())
    cols = measurement.log.columns()
    assert threads == {"load-receiver"}
    if kind is BusyPredictor:  # only the first, before any call was timed
        assert served_in[1:] and set(served_in[1:]) == {"predict_0"}
    else:  # caught up with the sender, the reader serves it, past the first too: no hand-off
        assert "load-receiver" in served_in[1:]
    assert np.array_equal(cols["started"], cols["dispatched"])
    assert cols["ok"].all() and np.all(cols["done"] >= cols["sent"])


def test_an_in_process_backlog_is_queued_in_order_and_cut_by_the_drain_timeout():
    """Offered twice what the one instance serves, the pipe's reader stops serving requests
    itself and queues them (it would otherwise serve the backlog with no end): they are served
    in the order sent, and those still out when the drain timeout ends are timeouts."""
    predictor = SleepPredictor(0.004)
    runner = DirectRunner.from_predictor(direct_cfg(1), predictor)
    point = LoadPoint("server", 1, 0.1, 0.6, schedule_seed=0, target_qps=500.0)

    async def main():
        await runner.start()
        try:
            driver = Driver(runner, [predictor.bundle.samples(1, 0)], drain_timeout_s=0.2)
            return await driver.run(point)
        finally:
            await runner.stop()

    log = asyncio.run(main()).log
    cols = log.columns()
    assert any(error.startswith("timeout") for error in log.errors)
    done = cols["done"][cols["ok"]]
    assert cols["ok"].sum() > 10 and np.all(np.diff(done) > 0)
