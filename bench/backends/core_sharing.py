"""The model's own core sharing: how fast one call runs while every core of the host runs one,
against one call alone, measured on the model itself once per host and remembered.

Why the model's own: the host calibration's figure (`calib_core_sharing`) times a GEMM whose
operands stay in one core's cache, and it measured 1.00 here, while MiniLM's calls ran at 0.93
of their speed alone when both cores ran one. A model's weights and activations pass through
the caches and memory the cores share (and on a VM, whatever the hypervisor shares). The planner
divides a worker's service times by this figure's share for the workers busy beside it
(`bench.capacity.scaling.core_sharing`); with the GEMM's, two replicas of MiniLM were predicted
5-7% faster than they ran.

How: `copies` worker processes (the host's cores over the predictor's intra-op threads), each
building the predictor from the config as a serving worker does; rounds alternate one copy
calling alone and all copies calling at once, and the median round's ratio of mean wall time
per call is kept (the wall clock, as a request's service time is timed). Processes, not
threads: in threads of one process, MiniLM on torch ran at 0.69-0.84 of its speed alone and the
MLP at 0.32-0.43, the GIL serialising the Python between their operators, which the separate
processes of a server never share.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import psutil
from omegaconf import OmegaConf

from bench.backends import build_predictor
from bench.backends.memo import remembered
from bench.backends.threads import available_cores
from bench.models import build_model
from bench.registry import typed

# Alternating rounds, and how long each copy calls in each phase of a round (at least
# `LEAST_CALLS` calls): long enough to take in the spells a busy sibling slows a core for.
ROUNDS = 5
PHASE_S = 0.4
LEAST_CALLS = 3
# More copies than this are not started (their memory and start-up are the cost): the host's
# calibration figure stands in where more would be needed.
MOST_COPIES = 8
# How long the copies may take to build the model and run their rounds.
TIMEOUT_S = 300.0
# Bump when what is measured changes, so remembered figures are measured again.
VERSION = 1
COLUMNS = ("model_core_sharing", "model_core_sharing_how")


def model_core_sharing(cfg: Any, threads: int, model_bytes: int) -> dict[str, Any]:
    """The `COLUMNS` of a run whose predictor has `threads` intra-op threads (0: the runtime's
    default) and a model of `model_bytes` (0: not known): the model's core sharing on this
    host, remembered under `cfg.cache_dir`; NaN and why where it is not measured;
    `cfg.core_sharing` where it pins one."""
    if cfg.core_sharing is not None:
        return _columns(float(cfg.core_sharing), f"pinned: core_sharing={cfg.core_sharing:g}")
    if not typed("strategy", cfg.strategy).serves_here:
        return _columns(math.nan, "not measured: the model is served elsewhere")
    if str(cfg.backend.get("device", "cpu")) != "cpu":
        return _columns(math.nan, "not measured: the model runs on a GPU")
    shown = f"{threads} thread(s)" if threads else "the runtime's default threads"
    threads = threads or available_cores()  # 0: the runtime's default, every core
    copies = available_cores() // threads
    if copies < 2:
        why = f"one copy of {shown} fills the {available_cores()} core(s) here"
        return _columns(math.nan, f"not measured: {why}")
    if copies > MOST_COPIES:
        why = f"{copies} copies would fill the host, more than the {MOST_COPIES} it starts"
        return _columns(math.nan, f"not measured: {why}")
    # Each copy holds the model at least twice over while it loads (file and runtime).
    needed, free = copies * 2 * model_bytes, psutil.virtual_memory().available
    if needed > free:
        why = f"{copies} copies of a {model_bytes / 2**20:,.0f} MB model need more memory than "
        return _columns(math.nan, f"not measured: {why}the {free / 2**20:,.0f} MB free")
    settings = OmegaConf.to_container(
        OmegaConf.create(
            {"model": cfg.model, "backend": cfg.backend, "optimization": cfg.optimization}
        ),
        resolve=True,
    )
    identity = json.dumps([settings, threads, copies, platform.node(), VERSION], sort_keys=True)
    (sharing, how), again = remembered(
        cfg.cache_dir,
        "core_sharing",
        identity,
        lambda: measure(settings, cfg.cache_dir, threads, copies),
        lambda found: (float(found[0]), str(found[1])),
        keep=lambda measured: math.isfinite(measured[0]),  # a failed probe: tried again
    )
    if again:
        how = f"remembered from an earlier probe on this host: {how}"
    return _columns(sharing, how)


def _columns(sharing: float, how: str) -> dict[str, Any]:
    return dict(zip(COLUMNS, (sharing, how), strict=True))


def measure(settings: dict, cache_dir: str, threads: int, copies: int) -> tuple[float, str]:
    """(core sharing, how it was measured) with `copies` processes of `threads` threads each,
    each building the model, backend and optimization `settings` name."""
    job = json.dumps({"settings": settings, "cache_dir": cache_dir, "threads": threads})
    with tempfile.TemporaryFile() as errors:
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
            for _ in range(copies)
        ]
        # Past the deadline the copies are killed, and their answers end.
        watchdog = threading.Timer(TIMEOUT_S, lambda: [p.kill() for p in processes])
        watchdog.start()
        try:
            for process in processes:
                process.stdin.write(job + "\n")
                process.stdin.flush()
            for process in processes:
                _answer(process)  # built, and ready
            ratios = []
            for _ in range(ROUNDS):
                alone = _timed_calls(processes[:1])
                together = _timed_calls(processes)
                ratios.append(min(1.0, statistics.fmean(alone) / statistics.fmean(together)))
        except (OSError, ValueError) as exc:
            if not watchdog.is_alive():
                return math.nan, f"not measured: the copies took over {TIMEOUT_S:g} s"
            errors.seek(0)
            last = errors.read().decode(errors="replace").strip().splitlines()[-1:]
            return math.nan, f"not measured: a copy failed: {exc}{': ' + last[0] if last else ''}"
        finally:
            watchdog.cancel()
            for process in processes:
                process.kill()
                process.wait()
    sharing = statistics.median(ratios)
    return sharing, (
        f"measured: {copies} processes of {threads} thread(s) calling at once against one "
        f"alone, {ROUNDS} rounds of {PHASE_S:g} s each, mean wall time per call; round ratios "
        f"{', '.join(f'{r:.3f}' for r in ratios)}, median {sharing:.3f}"
    )


def _timed_calls(processes: list[subprocess.Popen]) -> list[float]:
    """Each process's per-call seconds over a phase, the processes calling at once."""
    for process in processes:
        process.stdin.write("time\n")
        process.stdin.flush()
    return [t for process in processes for t in _answer(process)]


def _answer(process: subprocess.Popen) -> Any:
    """The copy's next answer (a line after `ANSWER`; other output of the model is skipped)."""
    while True:
        line = process.stdout.readline()
        if not line:
            raise OSError(f"a copy exited with status {process.wait()}")
        if line.startswith(ANSWER):
            return json.loads(line[len(ANSWER) :])


# What starts a copy's answers on its standard output.
ANSWER = "core-sharing: "


def _serve() -> None:
    """One copy: build the predictor the job on standard input names, say so, then time its
    calls for a phase each time it is asked to."""
    job = json.loads(sys.stdin.readline())
    settings = OmegaConf.create(job["settings"])
    settings.backend.threads = job["threads"]
    predictor = build_predictor(
        build_model(settings.model), settings.backend, settings.optimization, job["cache_dir"]
    )
    sample = predictor.bundle.samples(1, 0)
    predictor.predict(sample)  # untimed: the first call allocates
    print(ANSWER + "null", flush=True)
    for _ in sys.stdin:
        times = []
        began = time.perf_counter()
        while len(times) < LEAST_CALLS or time.perf_counter() - began < PHASE_S:
            call = time.perf_counter()
            predictor.predict(sample)
            times.append(time.perf_counter() - call)
        print(ANSWER + json.dumps(times), flush=True)


if __name__ == "__main__":
    _serve()
