"""MLPerf LoadGen (`mlcommons-loadgen`, a test extra) driving one of our runners: the external
reference the harness's load driver is checked against (tests/benchmarks/test_loadgen_fidelity.py
and, briefly, tests/test_loadgen_sut.py).

LoadGen's C++ core makes the schedule, issues each query from its own thread and takes every
timestamp; the adapter below is its system under test: IssueQuery hands each sample to the
runner (its thread-safe `issue` where the runner has one, else `infer` on an event loop of its
own thread) and calls QuerySamplesComplete as each answers.

Each run also says when LoadGen meant each query to go (`LoadGenResult.scheduled_s`): the
harness can replay those very arrivals, so that the two tools are compared on one schedule,
not on two Poisson draws. The times the SUT's IssueQuery is called would not do: for a model
holding the GIL, LoadGen's issuing thread waits for it, and the calls follow the model's
completions rather than the schedule. The schedule is drawn again here from LoadGen's seed, as
its C++ core draws it (`server_schedule`), so that LoadGen runs as it always does; a run with
`trace=True` also reads it from LoadGen's own trace, and the fast test checks that the two
agree to the nanosecond.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlperf_loadgen as lg
import numpy as np

from bench.load.sut import Request, Runner

_EMPTY = np.zeros(1, dtype=np.float32)


class LoadGenSUT:
    """A started runner as LoadGen's SUT, answering with `payloads` cycled by sample index."""

    def __init__(
        self, runner: Runner, payloads: list, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        self.runner = runner
        self.payloads = payloads
        self.loop = loop  # where `infer` runs when the runner cannot `issue`
        self.failures = 0
        self.issued = 0
        self.compute_s: list[float] = []  # each response's server compute time, as it came
        address, _ = _EMPTY.__array_interface__["data"]
        self._address = address

    def issue_queries(self, samples: list) -> None:
        self.issued += len(samples)
        for sample in samples:
            request = Request(sample.index, self.payloads[sample.index % len(self.payloads)])
            if self.runner.issues_directly:
                self.runner.issue(request, self._completer(sample.id))
            else:
                future = asyncio.run_coroutine_threadsafe(self.runner.infer(request), self.loop)
                future.add_done_callback(self._on_future(sample.id))

    def flush_queries(self) -> None: ...

    def _completer(self, query_id: int):
        def complete(result: Any) -> None:
            if isinstance(result, BaseException):
                self.failures += 1
            else:
                self.compute_s.append(result.compute_s)
            lg.QuerySamplesComplete([lg.QuerySampleResponse(query_id, self._address, 0)])

        return complete

    def _on_future(self, query_id: int):
        complete = self._completer(query_id)
        return lambda future: complete(future.exception() or future.result())


@dataclass(frozen=True)
class LoadGenResult:
    valid: bool
    p50_ms: float
    p99_ms: float
    mean_ms: float
    achieved_qps: float
    summary: str
    # When each query issued was scheduled, in order: seconds from the first (`server_schedule`).
    scheduled_s: np.ndarray
    # The runner's own compute time per request, median (what the model took, whoever drove
    # it: a difference between two runs is the host's, not the driver's).
    compute_p50_ms: float
    # The same, as LoadGen's own trace has it (only with `trace=True`).
    traced_s: np.ndarray | None = None


def schedule_seed(seed: int) -> int:
    """The `schedule_rng_seed` `run_server` gives LoadGen for its `seed`."""
    return 1000 + seed


def server_schedule(target_qps: float, seed: int, count: int) -> np.ndarray:
    """The first `count` arrivals of LoadGen's Server scenario at `target_qps` with
    `schedule_rng_seed` `seed`, seconds from the first, drawn as its C++ core draws them with
    libstdc++: a std::mt19937 seeded with `seed` (NumPy's legacy seeding is the same), each gap
    std::exponential_distribution's -log(1 - u) / rate with u std::generate_canonical's two
    32-bit draws over 2^64, truncated to whole nanoseconds, the first query at 0."""
    generator = np.random.MT19937()
    generator._legacy_seeding(seed)
    raw = generator.random_raw(2 * max(count - 1, 0)).astype(np.float64)
    u = (raw[0::2] + raw[1::2] * 2.0**32) / 2.0**64
    gaps_ns = np.trunc(-np.log(1.0 - u) / target_qps * 1e9).astype(np.int64)
    return np.concatenate([[0], np.cumsum(gaps_ns)])[:count] * 1e-9


def _traced_s(trace: Path) -> np.ndarray:
    """The scheduled time of each query in LoadGen's trace, seconds from the first. The trace
    is one event a line, not valid JSON as a whole (some detail lines are not); each query's
    "Sample" begin event is stamped ("ts", microseconds) at its scheduled time."""
    found = []
    with trace.open() as lines:
        for line in lines:
            if line.startswith('{"name":"Sample"') and '"ph":"b"' in line:
                event = json.loads(line.rstrip().rstrip(","))
                found.append((event["args"]["query_seq"], event["ts"]))
    if not found:
        raise ValueError(f"LoadGen's trace {trace} has no Sample events")
    times = np.array([ts for _, ts in sorted(found)]) * 1e-6
    return times - times[0]


def _ns_field(summary: str, label: str) -> float:
    match = re.search(rf"^{re.escape(label)}\s*:\s*([0-9.]+)", summary, re.MULTILINE)
    if match is None:
        raise ValueError(f"LoadGen's summary has no {label!r}:\n{summary}")
    return float(match.group(1))


class LoopThread:
    """An event loop running in a thread of its own: where a runner that serves through
    `infer` is started, driven by the harness (`run(coro)`) and called by LoadGen's SUT."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="sut-loop")
        self._thread.start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def run_server(
    runner: Runner,
    payloads: list,
    target_qps: float,
    duration_s: float,
    seed: int = 0,
    loop: LoopThread | None = None,
    trace: bool = False,
) -> LoadGenResult:
    """One LoadGen Server-scenario run (performance only) against a started runner; one that
    serves through `infer` needs the `loop` it was started on. `trace`: LoadGen also writes
    its trace, and the result has the schedule as the trace says (`traced_s`)."""
    if not runner.issues_directly and loop is None:
        raise ValueError(f"runner {runner.name} serves through infer(): pass its loop")
    adapter = LoadGenSUT(runner, payloads, loop.loop if loop else None)
    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.Server
    settings.mode = lg.TestMode.PerformanceOnly
    settings.server_target_qps = target_qps
    settings.server_target_latency_ns = 1_000_000_000  # the SLO is not what is compared
    settings.min_duration_ms = int(duration_s * 1000)
    settings.max_duration_ms = int(duration_s * 1000 * 3)
    settings.min_query_count = 100
    settings.schedule_rng_seed = schedule_seed(seed)
    sut = lg.ConstructSUT(adapter.issue_queries, adapter.flush_queries)
    qsl = lg.ConstructQSL(len(payloads), len(payloads), lambda _: None, lambda _: None)
    try:
        with tempfile.TemporaryDirectory(prefix="loadgen-") as folder:
            output = lg.LogOutputSettings()
            output.outdir = folder
            output.copy_summary_to_stdout = False
            log = lg.LogSettings()
            log.log_output = output
            log.enable_trace = trace
            lg.StartTestWithLogSettings(sut, qsl, settings, log)
            summary = (Path(folder) / "mlperf_log_summary.txt").read_text()
            traced = _traced_s(Path(folder) / "mlperf_log_trace.json") if trace else None
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    return LoadGenResult(
        valid="Result is : VALID" in summary and adapter.failures == 0,
        p50_ms=_ns_field(summary, "50.00 percentile latency (ns)") / 1e6,
        p99_ms=_ns_field(summary, "99.00 percentile latency (ns)") / 1e6,
        mean_ms=_ns_field(summary, "Mean latency (ns)") / 1e6,
        achieved_qps=_ns_field(summary, "Completed samples per second"),
        summary=summary,
        scheduled_s=server_schedule(target_qps, settings.schedule_rng_seed, adapter.issued),
        compute_p50_ms=float(np.median(adapter.compute_s)) * 1e3 if adapter.compute_s else np.nan,
        traced_s=traced,
    )
