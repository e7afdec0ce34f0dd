"""CPU and memory of this process tree and of the host, sampled beside the measured work.

The sampler thread sleeps on an Event between samples (never spins). Each sample is stamped
with `time.perf_counter()`, the driver's clock, so a point's numbers cover its measured window
exactly, not the warm-up.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass

import numpy as np
import psutil


@dataclass(frozen=True)
class _Sample:
    t: float
    proc_cpu_s: float  # user + system seconds of this process and its children, cumulative
    self_cpu_s: float  # the same, of this process alone (the driver and, remote, the client)
    host_busy_s: float  # all CPUs' non-idle seconds, cumulative
    host_total_s: float
    rss_bytes: int


class ResourceSampler:
    """Samples every `interval_s` from `start()` to `stop()`; `summary(t0, t1)` reads a window."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.samples: list[_Sample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._me = psutil.Process(os.getpid())
        self._gone: dict[int, float] = {}  # CPU seconds of children that exited meanwhile
        self._seen: dict[int, float] = {}

    def start(self) -> None:
        self.samples.clear()
        self._stop.clear()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="resource-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        procs = [self._me]
        try:
            procs += self._me.children(recursive=True)
        except psutil.Error:
            pass
        cpu, rss, alive, own = 0.0, 0, {}, 0.0
        for proc in procs:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    used = times.user + times.system
                    rss += proc.memory_info().rss
            except psutil.Error:
                continue
            alive[proc.pid] = used
            cpu += used
            if proc is self._me:
                own = used
        # A child that exited takes its CPU seconds with it; keep what we last saw of it.
        for pid, used in self._seen.items():
            if pid not in alive:
                self._gone[pid] = used
        self._seen = alive
        cpu += sum(self._gone.values())
        host = psutil.cpu_times()
        total = sum(host)
        idle = host.idle + getattr(host, "iowait", 0.0)
        self.samples.append(_Sample(time.perf_counter(), cpu, own, total - idle, total, rss))

    def summary(self, t0: float, t1: float) -> dict:
        """CPU use over [t0, t1], peak RSS and every RSS sample of the window (MB, a JSON list:
        the spread a comparison of two runs' memory reads its noise from), as result columns."""
        inside = [s for s in self.samples if t0 <= s.t <= t1]
        first = _nearest(self.samples, t0)
        last = _nearest(self.samples, t1)
        cores = psutil.cpu_count() or 1
        row = {
            "cpu_cores_used": np.nan,
            "harness_cpu_cores_used": np.nan,
            "cpu_util_pct": np.nan,
            "system_cpu_util_pct": np.nan,
            "rss_peak_mb": np.nan,
            "rss_samples_mb": "[]",
            "load_avg_1m": os.getloadavg()[0],
        }
        if first is not None and last is not None and last.t > first.t:
            used = (last.proc_cpu_s - first.proc_cpu_s) / (last.t - first.t)
            row["cpu_cores_used"] = used
            row["cpu_util_pct"] = 100.0 * used / cores
            row["harness_cpu_cores_used"] = (last.self_cpu_s - first.self_cpu_s) / (
                last.t - first.t
            )
            host_total = last.host_total_s - first.host_total_s
            if host_total > 0:
                row["system_cpu_util_pct"] = (
                    100.0 * (last.host_busy_s - first.host_busy_s) / host_total
                )
        peak_from = inside or [s for s in (first, last) if s is not None]
        if peak_from:
            row["rss_peak_mb"] = max(s.rss_bytes for s in peak_from) / 2**20
            row["rss_samples_mb"] = json.dumps([round(s.rss_bytes / 2**20, 3) for s in peak_from])
        return row


def _nearest(samples: list[_Sample], t: float) -> _Sample | None:
    return min(samples, key=lambda s: abs(s.t - t)) if samples else None
