"""A short calibration micro-benchmark that places this host on the scaling model's scale.

A measurement, so it runs where the measuring runs: `bench.run` calls `host_calibration` once
per run, before the first load point, and stores its figures in every row (`calib_*`, with
`calib_host_key`). The planner reads them from the rows; it never calibrates the machine it
happens to run on.

Per thread: fp32, bf16 and int8 GEMM rates, and memory bandwidth; plus fp32 GEMM on all the
threads the runtime uses by default, to see how the cores scale; and the single-thread fp32 GEMM
rate of one core while every core runs one (`calib_core_sharing`, that rate over the rate of a
core alone): what a worker loses when the other workers are busy beside it (shared caches and
memory, a lower all-core clock, a hypervisor's siblings). Each rate is the median of
repeated timed samples after a warm-up, with the spread between samples reported beside it.

fp32 and int8 are measured with both libraries the harness serves with, because they differ by
hardware in ways that matter: torch's fp32 matmul goes to MKL, which takes its AVX2 path on AMD
CPUs even where AVX-512 is available, while ONNX Runtime's MLAS uses AVX-512. Each library's
figure is kept (`..._torch`, `..._onnxruntime`) for models that ran on it; the unsuffixed figure
is the best of the two, what the hardware gives to software that uses it. bf16 is torch only
(ONNX Runtime has no bf16 CPU kernels); without AVX512-BF16 or AMX it shows how slow it is.

`host_calibration` caches the result per host (CPU model, cores, ISA flags, library versions)
under `<cache_dir>/calibration/`, so it runs once per host rather than once per run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.metrics.host import host_fingerprint

if TYPE_CHECKING:
    import onnxruntime as ort

# Bump when what is measured changes, so cached calibrations are measured again.
CALIBRATION_VERSION = 2
# Square GEMM side: large enough to run at a library's sustained rate, small enough that one
# call takes milliseconds even where bf16 runs on slow reference kernels.
GEMM_N = 512
# Enough work per call to spread over many threads.
GEMM_N_ALL_THREADS = 1024
# Each array well above the last-level cache one core reaches (32 MB per CCD on AMD parts,
# tens of MB on most Intel parts), so the copy streams from DRAM.
COPY_BYTES = 256 * 2**20
MIN_SAMPLES = 3
# A sample long enough that timer resolution and scheduling noise do not matter.
_SAMPLE_FRACTION = 0.1
# Fields the cache must hold to be used.
REQUIRED = (
    "calib_fp32_gflops_per_thread",
    "calib_bf16_gflops_per_thread",
    "calib_int8_gops_per_thread",
    "calib_mem_bandwidth_gbs",
    "calib_fp32_gflops_all_threads",
    "calib_core_sharing",
    "calib_method",
    "calib_spread",
    "calib_seconds",
)


def _rate(fn: Callable[[], object], work: float, share_s: float) -> tuple[float, float]:
    """(median work per second, relative spread (max - min) / median) of `fn` over `share_s`.

    Two untimed calls (a warm-up, then one that sizes the samples), then samples of enough
    calls to last about a tenth of the share until the share is used; at least MIN_SAMPLES
    samples whatever the share.
    """
    start = time.perf_counter()
    fn()
    t = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t, 1e-9)
    calls = max(1, int(share_s * _SAMPLE_FRACTION / once))
    rates: list[float] = []
    while len(rates) < MIN_SAMPLES or time.perf_counter() - start < share_s:
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        rates.append(work * calls / (time.perf_counter() - t))
    median = statistics.median(rates)
    return median, (max(rates) - min(rates)) / median


def _sharing(fn: Callable[[], object], work: float, share_s: float) -> tuple[float, float]:
    """One core's rate of `fn` with every core running it at once (one Python thread a core;
    the callers' GEMMs release the GIL) over its rate alone, as a work rate of `work` x that
    ratio (the loop's units), and the spread between rounds.

    Rounds alternate alone and all at once, and the best round's ratio is kept: on a shared
    host another tenant's work lands on some rounds and not others, and what is measured is
    what the cores do to each other, not what a neighbour takes from them."""
    cores = len(os.sched_getaffinity(0))
    rounds = MIN_SAMPLES * 2
    window = share_s / rounds / 2
    ratios = []
    with ThreadPoolExecutor(cores) as pool:
        for _ in range(rounds):
            alone = _calls_per_s(fn, window)
            together = statistics.median(pool.map(lambda _: _calls_per_s(fn, window), range(cores)))
            ratios.append(min(1.0, together / alone))
    best = max(ratios)
    return work * best, (best - min(ratios)) / best


def _calls_per_s(fn: Callable[[], object], window_s: float) -> float:
    """Calls of `fn` a second over about `window_s` (at least two calls, the first untimed)."""
    fn()
    calls, start = 0, time.perf_counter()
    while calls < 1 or time.perf_counter() - start < window_s:
        fn()
        calls += 1
    return calls / (time.perf_counter() - start)


def _ort_session(op: str, a_type: int, b_type: int, y_type: int, n: int) -> ort.InferenceSession:
    """A one-node ONNX Runtime graph `Y = op(A, B)` on n x n inputs, one thread."""
    import onnxruntime as ort
    from onnx import helper

    inputs = [
        helper.make_tensor_value_info("A", a_type, [n, n]),
        helper.make_tensor_value_info("B", b_type, [n, n]),
    ]
    output = helper.make_tensor_value_info("Y", y_type, [n, n])
    graph = helper.make_graph(
        [helper.make_node(op, ["A", "B"], ["Y"])], "calibration", inputs, [output]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9  # readable by every ONNX Runtime the project supports
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def calibrate(budget_s: float = 30.0) -> dict:
    """Measure this host: per-thread GEMM rates (fp32, bf16, int8), single-thread copy bandwidth,
    and the all-threads fp32 GEMM rate, within about `budget_s` seconds."""
    # Imported here, not at the top: a run whose calibration is cached, and a worker that
    # serves with one library only, should not pay for loading both.
    import onnxruntime as ort
    import torch
    from onnx import TensorProto

    started = time.perf_counter()
    n = GEMM_N
    flops = 2.0 * n**3
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    a32, b32 = (torch.randn(n, n, generator=gen) for _ in range(2))
    a16, b16 = a32.to(torch.bfloat16), b32.to(torch.bfloat16)
    a8, b8 = (torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=gen) for _ in range(2))
    np32 = {"A": a32.numpy(), "B": b32.numpy()}
    # MatMulInteger takes u8 activations and s8 weights, the layout quantized models use.
    np8 = {"A": rng.integers(0, 256, (n, n), dtype=np.uint8), "B": b8.numpy()}
    fp32 = TensorProto.FLOAT
    ort32 = _ort_session("MatMul", fp32, fp32, fp32, n)
    ort8 = _ort_session("MatMulInteger", TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32, n)
    big = GEMM_N_ALL_THREADS
    a_big, b_big = (torch.randn(big, big, generator=gen) for _ in range(2))
    # np.ones writes the source's pages; the untimed warm-up copy faults in the destination's.
    # Read + write bytes are counted, not the write-allocate read a cache adds: the bandwidth a
    # streaming copy gets, as STREAM's Copy reports it.
    src = np.ones(COPY_BYTES // 8)
    dst = np.empty_like(src)
    all_threads = torch.get_num_threads()
    # (result key, how it is timed, call, work per call, torch threads)
    plan: list[tuple[str, Callable, Callable[[], object], float, int]] = [
        ("calib_fp32_gflops_per_thread_torch", _rate, lambda: torch.matmul(a32, b32), flops, 1),
        # A ratio, not a rate: `work` 1e9 makes the loop's GFLOP-scaling leave it as it is.
        ("calib_core_sharing", _sharing, lambda: torch.matmul(a32, b32), 1e9, 1),
        (
            "calib_fp32_gflops_per_thread_onnxruntime",
            _rate,
            lambda: ort32.run(None, np32),
            flops,
            1,
        ),
        ("calib_bf16_gflops_per_thread", _rate, lambda: torch.matmul(a16, b16), flops, 1),
        ("calib_int8_gops_per_thread_torch", _rate, lambda: torch._int_mm(a8, b8), flops, 1),
        ("calib_int8_gops_per_thread_onnxruntime", _rate, lambda: ort8.run(None, np8), flops, 1),
        ("calib_mem_bandwidth_gbs", _rate, lambda: np.copyto(dst, src), 2.0 * src.nbytes, 1),
        (
            "calib_fp32_gflops_all_threads",
            _rate,
            lambda: torch.matmul(a_big, b_big),
            2.0 * big**3,
            all_threads,
        ),
    ]
    found: dict[str, float] = {}
    spreads: list[float] = []
    try:
        for done, (key, timed, fn, work, threads) in enumerate(plan):
            torch.set_num_threads(threads)
            # What is left of the budget, shared by what is left to measure (setup included).
            share = max(0.0, budget_s - (time.perf_counter() - started)) / (len(plan) - done)
            rate, spread = timed(fn, work, share)
            found[key] = rate / 1e9
            if timed is _sharing:  # rounds that differ by what neighbours took, not a repeat
                found["calib_core_sharing_spread"] = spread
            else:
                spreads.append(spread)
    finally:
        torch.set_num_threads(all_threads)
    found["calib_fp32_gflops_per_thread"] = max(
        found["calib_fp32_gflops_per_thread_torch"],
        found["calib_fp32_gflops_per_thread_onnxruntime"],
    )
    found["calib_int8_gops_per_thread"] = max(
        found["calib_int8_gops_per_thread_torch"],
        found["calib_int8_gops_per_thread_onnxruntime"],
    )
    return {
        **found,
        "calib_threads_all": all_threads,
        "calib_spread": max(spreads),
        "calib_method": (
            f"single-thread {n}x{n} GEMMs, best of torch {torch.__version__} (matmul fp32, "
            f"bf16; _int_mm int8 s8 x s8) and ONNX Runtime {ort.__version__} (MatMul fp32, "
            f"MatMulInteger u8 x s8); fp32 {big}x{big} on {all_threads} threads (torch); "
            f"core sharing: the single-thread fp32 GEMM on every core at once over alone (torch), "
            f"the best of {MIN_SAMPLES * 2} alternating rounds; "
            f"numpy copy of {COPY_BYTES // 2**20} MiB, read + write bytes; medians of timed "
            f"samples after a warm-up, spread = (max - min) / median"
        ),
        "calib_budget_s": budget_s,
        "calib_seconds": time.perf_counter() - started,
    }


def _host_key(fingerprint: dict) -> tuple[str, dict]:
    """The cache key: what makes a calibration of this host valid on a later run."""
    # The host's name too: machines alike in every other field (a cluster's nodes, sharing a
    # cache folder over NFS, say) each calibrate themselves.
    identity = {
        "version": CALIBRATION_VERSION,
        "host": fingerprint.get("host_name", ""),
        "cpu": fingerprint.get("host_cpu_model", ""),
        "cores": fingerprint.get("host_cores", 0),
        "isa": fingerprint.get("host_isa", ""),
        "libraries": fingerprint.get("host_versions", ""),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return digest, identity


def host_calibration(cache_dir: str, budget_s: float = 30.0) -> dict:
    """This host's calibration, measured once and cached in `<cache_dir>/calibration/<key>.json`.

    The key hashes the host fingerprint's host name, CPU model, core count, ISA flags and
    library versions, so a new library version or another machine measures again. The result
    carries the key as `calib_host_key`.
    """
    key, identity = _host_key(host_fingerprint())
    path = Path(os.path.expanduser(cache_dir)) / "calibration" / f"{key}.json"
    cached = _read(path)
    if cached is not None:
        return {**cached, "calib_host_key": key}
    result = calibrate(budget_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps({"host": identity, "calibration": result}, indent=2))
    partial.replace(path)  # atomic: a concurrent run reads the old file or the whole new one
    return {**result, "calib_host_key": key}


def _read(path: Path) -> dict | None:
    """A cached calibration with every required field and finite numbers, else None."""
    try:
        result = json.loads(path.read_text())["calibration"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(result, dict) or any(k not in result for k in REQUIRED):
        return None
    numbers = [v for k, v in result.items() if k != "calib_method"]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers):
        return None
    return result
