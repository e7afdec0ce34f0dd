"""From the measuring host to a catalog server: a transparent, pure scaling model.

Everything the planner assumes about hardware it did not measure is here, as named constants
with the reasoning next to them, and `FORMULA` states the model in words the report prints.

The model, per worker (one worker = `threads_per_worker` threads on as many cores):

* compute-bound, precision p (fp32, bf16, int8):
  factor = R_target(p) / R_host(p), where R_host(p) is the host's single-thread GEMM rate for p
  as the calibration measured it (with the model's library, or the best of them), and
  R_target(p) = F x f x M_p x eta: fp32 FLOP per cycle per core (the P-core's on hybrid parts),
  an all-core clock, the ISA class's rate for p relative to fp32, and the fraction of peak a
  library GEMM reaches.
* memory-bound: factor = (B x eta_mem / cores) / B_host: the target's sustained bandwidth shared
  by its busy cores, over the single-thread copy bandwidth the host measured.

A service time measured on the host divided by the factor is the service time expected on the
target. Each estimate carries a band (worst cases multiplied through, widened for every input
the catalog flags uncertain) and a tag: `measured` (the host is that CPU), `calibrated` (the
host's calibration against the target's spec) or `spec-only` (no calibration: spec against
spec, or against assumed host figures).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bench.capacity.catalog import CpuSpec, Server, cpu_matches

PRECISIONS = ("fp32", "bf16", "int8")
BOUNDS = ("compute", "memory")
TAGS = ("measured", "calibrated", "spec-only")


@dataclass(frozen=True)
class Band:
    """A value with the range it may take; arithmetic keeps worst cases (low with low)."""

    value: float
    low: float
    high: float

    @classmethod
    def exact(cls, value: float) -> Band:
        return cls(value, value, value)

    def __mul__(self, other: Band) -> Band:
        return Band(self.value * other.value, self.low * other.low, self.high * other.high)

    def __truediv__(self, other: Band) -> Band:
        return Band(self.value / other.value, self.low / other.high, self.high / other.low)

    def widened(self, ratio: float) -> Band:
        """The same value, its range stretched by `ratio` (>= 1) on each side."""
        return Band(self.value, self.low / ratio, self.high * ratio)


# --- assumptions -------------------------------------------------------------------------------
# Each is an assumption, not a measurement; the bands are deliberately wide.

# Fraction of a core's peak that a single-threaded library GEMM (MKL, oneDNN, ONNX Runtime's
# MLAS) reaches on mid-sized matrices: typically 80-95% on parts the library has kernels for,
# lower where it picks a narrower code path than the hardware offers.
GEMM_EFFICIENCY = Band(0.80, 0.60, 0.95)

# Sustained share of theoretical DRAM bandwidth with every core streaming (STREAM-like): 60-85%
# on well-populated channels; less with two DIMMs per channel, which the band's low end covers.
STREAM_EFFICIENCY = Band(0.70, 0.50, 0.85)

# All-core clock: the midpoint of base and (P-core) boost; the band spans base..boost, because
# what a core sustains depends on the board's power limits and cooling, which the catalog does
# not know.
CLOCK_RULE = "midpoint of base and boost (band: base..boost)"

# Every input the catalog flags uncertain (not verified, secondary source, depends on DIMM
# population or power limits, or one of two alternatives) stretches the band by this much on
# each side. A judgment: most such facts are within 25%, the DIMM-population ones can be worse.
UNCERTAIN_WIDENING = 1.25

# Same CPU model as the measuring host: the factor is 1; the band allows for other boards,
# memory population and cooling.
MEASURED_BAND = Band(1.0, 1 / 1.10, 1.10)

# int8 GEMM rate relative to fp32 on the same core, by ISA class, from instruction throughput
# (multiply-adds per 32-bit lane per instruction, at the same issue rate):
#   amx:  AMX-INT8 tiles: 1024 int8 MACs per cycle against 32 fp32 FMAs of AVX-512: 32x peak;
#         libraries reach 8-16x on real layers.
#   vnni: VPDPBUSD (AVX512_VNNI or the 256-bit AVX_VNNI) does 4 u8 x s8 MACs per lane, an fp32
#         FMA does 1: 4x peak; quantize/requantize steps take some of it back (2.5-4x).
#   avx2: VPMADDUBSW + VPMADDWD (+ VPADDD): two multiply instructions per 4 MACs per lane: 2x;
#         saturation handling and extra adds cost some (1.3-2x).
#   none: no 256-bit integer multiply-add: about the fp32 rate or less.
INT8_RATE = {
    "amx": Band(16.0, 8.0, 32.0),
    "vnni": Band(4.0, 2.5, 4.0),
    "avx2": Band(2.0, 1.3, 2.0),
    "none": Band(1.0, 0.5, 1.0),
}

# bf16 GEMM rate relative to fp32 on the same core, by ISA class:
#   amx:         AMX-BF16 tiles: 512 bf16 MACs per cycle against 32 fp32 FMAs: 16x peak; 8-16x.
#   avx512_bf16: VDPBF16PS does 2 bf16 MACs per 32-bit lane: 2x peak (1.5-2x).
#   avx512:      no bf16 instructions: oneDNN converts to fp32 and runs fp32 kernels, plus the
#                conversions (0.4-1x).
#   avx2:        no oneDNN bf16 path at all: reference kernels; the calibration of such a host
#                shows how slow (0.05-1x, unverified).
BF16_RATE = {
    "amx": Band(16.0, 8.0, 16.0),
    "avx512_bf16": Band(2.0, 1.5, 2.0),
    "avx512": Band(0.7, 0.4, 1.0),
    "avx2": Band(0.3, 0.05, 1.0),
}

# Spec-only without a catalog entry for the host (a VM reporting "AMD EPYC"): the host's
# figures are assumed from its ISA flags. fp32 FLOP/cycle: AVX-512 parts do 32 (512-bit ops on
# 256-bit units, Zen 4) to 64 (two 512-bit FMA units); AVX2+FMA parts 16 (Zen 1) to 32.
HOST_ASSUMED_FLOPS_PER_CYCLE = {
    "avx512": Band(32.0, 32.0, 64.0),
    "avx2": Band(32.0, 16.0, 32.0),
    "none": Band(16.0, 8.0, 16.0),
}
HOST_ASSUMED_CLOCK_GHZ = Band(3.0, 2.0, 4.0)
HOST_ASSUMED_MEM_BW_PER_CORE_GBS = Band(10.0, 4.0, 40.0)

# The calibration's keys per precision (bench.metrics.calibration, stored in each row).
CALIBRATION_KEYS = {
    "fp32": "calib_fp32_gflops_per_thread",
    "bf16": "calib_bf16_gflops_per_thread",
    "int8": "calib_int8_gops_per_thread",
    "memory": "calib_mem_bandwidth_gbs",
}

# Backends -> the library whose calibration figure stands for the model's kernels. They differ:
# torch's fp32 matmul (MKL) takes its AVX2 path on AMD CPUs, ONNX Runtime's MLAS uses AVX-512.
_LIBRARIES = {"torch": "torch", "torch_compile": "torch", "onnxruntime": "onnxruntime"}

# The target facts each kind of estimate rests on (fields of CpuSpec).
_COMPUTE_FACTS = ("fp32_flops_per_cycle_p", "base_ghz", "boost_ghz", "isa")
_MEMORY_FACTS = ("mem_bandwidth_gbs", "cores")


def _show(band: Band) -> str:
    return f"{band.value:g} ({band.low:g}-{band.high:g})"


def _show_table(table: Mapping[str, Band], unit: str = "") -> str:
    return ", ".join(f"{name} {_show(band)}{unit}" for name, band in table.items())


FORMULA = f"""\
Scale factor: per-worker throughput on the server = per-worker throughput measured on the host
x factor (the host's service times are divided by it).

compute-bound, precision p (fp32 | bf16 | int8):
  factor = R_server(p) / R_host(p)
  R_host(p)   = single-thread GEMM rate for p measured on the host by the calibration, with the
                library the model ran on (torch or ONNX Runtime; the best of both when not
                known), band = its spread between repeats
  R_server(p) = F x f x M_p x eta
    F   = fp32 FLOP per cycle per core, from the catalog (P-core on hybrid Intel parts)
    f   = all-core clock: {CLOCK_RULE}
    M_p = rate of p relative to fp32 for the server's ISA class:
          int8: {_show_table(INT8_RATE, "x")}
          bf16: {_show_table(BF16_RATE, "x")}
          fp32: 1
    eta = fraction of peak a library GEMM reaches: {_show(GEMM_EFFICIENCY)}
memory-bound:
  factor = (B x eta_mem / n) / B_host
    B       = theoretical DRAM bandwidth of the server
    n       = its worker cores (below)
    eta_mem = sustained share of B with every core streaming: {_show(STREAM_EFFICIENCY)}
    B_host  = single-thread copy bandwidth measured on the host (read + write bytes)
measured (the host's CPU is the server's CPU): factor 1, band {MEASURED_BAND.low:.2f}-\
{MEASURED_BAND.high:.2f}.
spec-only (no calibration): R_host and B_host from the host's catalog entry or, without one,
  assumed from its ISA flags:
    FLOP/cycle: {_show_table(HOST_ASSUMED_FLOPS_PER_CYCLE)}
    clock: {_show(HOST_ASSUMED_CLOCK_GHZ)} GHz; bandwidth per core: \
{_show(HOST_ASSUMED_MEM_BW_PER_CORE_GBS)} GB/s
  Spec against spec, eta and eta_mem cancel and are left out (against the assumed bandwidth
  per core, a sustained figure, the server keeps eta_mem).
band: the ranges above multiplied through at their worst, then stretched x/÷ \
{UNCERTAIN_WIDENING:g} on each side
  for every catalog fact used that the catalog flags uncertain.
core sharing: a worker's service times are divided by s(busy) / s(busy when measured), with
  s = 1 for one busy core, the model's own core sharing when every core is busy (its run's
  model_core_sharing: one call's speed while every core of the host runs a copy of the model in
  a process of its own, over its speed alone), linear in between; busy = workers x threads over
  the cores (the server's worker cores; the host's when measured). Where the run did not
  measure the model's: the host's calib_core_sharing (the same for a cache-resident GEMM, which
  contends less than a model); calibrated before that figure existed: s = 1.
host drift: the factor and the band's low end are multiplied by the slowest speed at which the
  host served the configuration's measured points (any verdict) relative to the points sized
  from, the band's high end by the fastest: a shared host's speed drifts between points, and
  the capacity it measures with it; a plan sized at the slowest holds while the server runs
  that slowly.
workers per server = min(floor((worker cores - reserved cores) / threads per worker),
                         floor((memory - reserved memory) / peak RSS per worker))
  worker cores = physical cores; P-cores only on hybrid parts. SMT siblings are not counted: a
  GEMM-bound worker gains little from its core's second thread, and the host measured each
  worker thread on a core of its own. E-cores run no workers (one there would be 2-3x slower
  and set the tail latency); they take the reserved cores first.
"""


@dataclass(frozen=True)
class Scale:
    """The factor a per-worker throughput measured on the host is multiplied by on a server."""

    factor: float
    low: float
    high: float
    tag: str
    formula: str
    inputs: dict[str, Any] = field(default_factory=dict)

    def times(self, ratio: float) -> Scale:
        """The same scale with its factor and band multiplied by `ratio`."""
        return replace(
            self, factor=self.factor * ratio, low=self.low * ratio, high=self.high * ratio
        )

    def drifted(self, slowest: float, fastest: float) -> Scale:
        """At the slowest speed the measuring host served the configuration at
        (`measured.host_drift`): the factor and the band's low end times `slowest` (<= 1), its
        high end times `fastest` (>= 1). A plan must hold while the server runs as slowly as
        the host ran while it measured: sized at the speed of the points the service times came
        from, the planner erred towards fewer servers (by up to 26% here), wherever the host
        slowed later in a search."""
        return replace(
            self, factor=self.factor * slowest, low=self.low * slowest, high=self.high * fastest
        )


def isa_flags(host_isa: str | Iterable[str] | None) -> frozenset[str]:
    """The host fingerprint's `host_isa` ("avx2,fma,...") as a set of flags; none when the
    value is missing (None, or NaN from a results table)."""
    if isinstance(host_isa, str):
        return frozenset(f.strip() for f in host_isa.split(",") if f.strip())
    return frozenset(host_isa) if isinstance(host_isa, Iterable) else frozenset()


def isa_class(precision: str, isa: Iterable[str]) -> str:
    """The ISA class that sets the rate of `precision` relative to fp32 (keys of *_RATE)."""
    flags = frozenset(isa)
    if precision == "int8":
        if "amx_int8" in flags:
            return "amx"
        if flags & {"avx512_vnni", "avx_vnni"}:
            return "vnni"
        return "avx2" if "avx2" in flags else "none"
    if precision == "bf16":
        if "amx_bf16" in flags:
            return "amx"
        if "avx512_bf16" in flags:
            return "avx512_bf16"
        return "avx512" if "avx512f" in flags else "avx2"
    return "fp32"


def precision_rate(precision: str, isa: Iterable[str]) -> Band:
    """M_p: the rate of `precision` relative to fp32 on a core with these ISA flags."""
    if precision == "fp32":
        return Band.exact(1.0)
    table = INT8_RATE if precision == "int8" else BF16_RATE
    return table[isa_class(precision, isa)]


def core_sharing(
    host: Mapping[str, Any], busy: float, cores: float, model: float = math.nan
) -> float:
    """One core's rate with `busy` of `cores` cores at work, relative to its rate alone: 1 with
    one busy, the shared figure with all busy, linear in between. The shared figure is the
    model's own where its run measured one (`model`, its rows' `model_core_sharing`), else the
    host calibration's `calib_core_sharing` (1 where neither is known)."""
    shared = model if _is_share(model) else host.get("calib_core_sharing")
    if not _is_share(shared) or cores <= 1:
        return 1.0
    busy_share = min(1.0, max(0.0, (busy - 1) / (cores - 1)))
    return 1.0 - busy_share * (1.0 - float(shared))


def _is_share(value: Any) -> bool:
    """A finite share in (0, 1]."""
    try:
        return 0 < float(value) <= 1
    except (TypeError, ValueError):
        return False


def worker_cores(cpu: CpuSpec) -> int:
    """Cores that run workers: the P-cores of a hybrid part, every physical core otherwise."""
    return cpu.p_cores


def scale(
    host: Mapping[str, Any],
    server: Server,
    precision: str,
    bound: str = "compute",
    host_spec: CpuSpec | None = None,
    backend: str | None = None,
) -> Scale:
    """How one worker's throughput on `server` compares with one worker's on the host.

    `host` holds the host fingerprint (`host_cpu_model`, `host_isa`, `host_cores`) and, when the
    host was calibrated, the `calib_*` figures its rows store (`bench.metrics.calibration`
    measured them during the run). `host_spec` is
    the host's catalog entry where it has one (`Catalog.cpu_for_host`); it is used only when
    there is no calibration. `backend` (the model's `backend.name`) picks the calibration figure
    of the library the model ran on, where the calibration has one; otherwise the best
    library's figure is used, which errs towards fewer requests per server.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: accepted {', '.join(PRECISIONS)}; got {precision!r}")
    if bound not in BOUNDS:
        raise ValueError(f"bound: accepted {', '.join(BOUNDS)}; got {bound!r}")
    cpu = server.cpu
    host_model = str(host.get("host_cpu_model", ""))
    inputs: dict[str, Any] = {
        "server_cpu": cpu.name,
        "host_cpu_model": host_model,
        "host_cores": host.get("host_cores"),
        "precision": precision,
        "bound": bound,
    }
    if cpu_matches(host_model, cpu):
        return Scale(
            factor=MEASURED_BAND.value,
            low=MEASURED_BAND.low,
            high=MEASURED_BAND.high,
            tag="measured",
            formula=f"the host's CPU ({host_model}) is the server's {cpu.name}: factor 1",
            inputs=inputs,
        )
    key = _calibration_key(host, precision, bound, backend)
    tag = "calibrated" if key else "spec-only"
    # Spec against spec, the efficiencies are the same assumption on both sides and cancel, so
    # they are left out rather than counted twice in the band. Against a measurement they stay.
    # The assumed host bandwidth is already a sustained figure, so the server's keeps its share.
    with_efficiency = tag == "calibrated" or (bound == "memory" and host_spec is None)
    rate = _compute_rate if bound == "compute" else _bandwidth_share
    used = _COMPUTE_FACTS if bound == "compute" else _MEMORY_FACTS
    server_side, server_text = rate(cpu, precision, with_efficiency, inputs)
    if key:
        host_side, host_text = _measured(host, key)
    elif host_spec is not None:
        host_side, host_text = rate(host_spec, precision, False, {})
        host_text = f"host spec {host_spec.name}: {host_text}"
    else:
        host_side, host_text = _assumed_host(isa_flags(host.get("host_isa", "")), precision, bound)
        host_text = f"assumed for the host: {host_text}"
    uncertain = [f"{cpu.id}.{f}" for f in used if f in cpu.uncertain]
    if tag == "spec-only" and host_spec is not None:
        uncertain += [f"{host_spec.id}.{f}" for f in used if f in host_spec.uncertain]
    ratio = (server_side / host_side).widened(UNCERTAIN_WIDENING ** len(uncertain))
    inputs.update(
        server_rate=server_side.value,
        host_rate=host_side.value,
        rate_unit="GB/s per worker core" if bound == "memory" else "GFLOP/s (GOP/s) per thread",
        uncertain_inputs=uncertain,
        widening=UNCERTAIN_WIDENING ** len(uncertain),
    )
    formula = (
        f"{tag}, {bound}-bound {precision}: ({server_text}) / ({host_text}) = {ratio.value:.3g} "
        f"(band {ratio.low:.3g}-{ratio.high:.3g}"
        + (f"; {len(uncertain)} uncertain input(s): {', '.join(uncertain)}" if uncertain else "")
        + ")"
    )
    return Scale(ratio.value, ratio.low, ratio.high, tag, formula, inputs)


def _calibration_key(
    host: Mapping[str, Any], precision: str, bound: str, backend: str | None
) -> str | None:
    """The `calib_*` figure the host side uses: the model's library's where the calibration
    has it, else the best library's; None without a calibration."""
    key = CALIBRATION_KEYS["memory" if bound == "memory" else precision]
    library = _LIBRARIES.get(backend or "")
    if bound == "compute" and library and _positive(host.get(f"{key}_{library}")):
        return f"{key}_{library}"
    return key if _positive(host.get(key)) else None


def _positive(value: Any) -> bool:
    try:
        return math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False


def _compute_rate(
    cpu: CpuSpec, precision: str, with_efficiency: bool, inputs: dict[str, Any]
) -> tuple[Band, str]:
    """F x f x M_p (x eta) for one core of `cpu`."""
    flops = Band.exact(cpu.fp32_flops_per_cycle_p)
    clock = Band((cpu.base_ghz + cpu.boost_ghz) / 2, cpu.base_ghz, cpu.boost_ghz)
    rate = precision_rate(precision, cpu.isa)
    isa = isa_class(precision, cpu.isa)
    inputs.update(
        flops_per_cycle=flops.value,
        clock_ghz=clock.value,
        clock_band_ghz=(clock.low, clock.high),
        isa_class=isa,
        precision_rate=rate.value,
        precision_rate_band=(rate.low, rate.high),
    )
    text = (
        f"{flops.value:g} FLOP/cycle x {clock.value:.3g} GHz x {rate.value:g} ({precision}, {isa})"
    )
    result = flops * clock * rate
    if with_efficiency:
        inputs["gemm_efficiency"] = GEMM_EFFICIENCY.value
        text += f" x {GEMM_EFFICIENCY.value:g} GEMM efficiency"
        result = result * GEMM_EFFICIENCY
    return result, text


def _bandwidth_share(
    cpu: CpuSpec, precision: str, with_efficiency: bool, inputs: dict[str, Any]
) -> tuple[Band, str]:
    """B (x eta_mem) / n: the bandwidth each busy worker core gets, whatever the precision."""
    cores = worker_cores(cpu)
    share = Band.exact(cpu.mem_bandwidth_gbs / cores)
    inputs.update(mem_bandwidth_gbs=cpu.mem_bandwidth_gbs, worker_cores=cores)
    text = f"{cpu.mem_bandwidth_gbs:g} GB/s / {cores} cores"
    if with_efficiency:
        inputs["stream_efficiency"] = STREAM_EFFICIENCY.value
        text = f"{cpu.mem_bandwidth_gbs:g} GB/s x {STREAM_EFFICIENCY.value:g} / {cores} cores"
        share = share * STREAM_EFFICIENCY
    return share, text


def _measured(host: Mapping[str, Any], key: str) -> tuple[Band, str]:
    """The calibration's figure; its band is the spread between its repeats."""
    value = float(host[key])
    spread = float(host.get("calib_spread") or 0.0)
    spread = spread if math.isfinite(spread) and spread > 0 else 0.0
    band = Band(value, value / (1 + spread), value * (1 + spread))
    return band, f"{value:.4g} measured on the host ({key})"


def _assumed_host(isa: frozenset[str], precision: str, bound: str) -> tuple[Band, str]:
    """The host's per-core rate or bandwidth share assumed from its ISA flags alone."""
    if bound == "memory":
        b = HOST_ASSUMED_MEM_BW_PER_CORE_GBS
        return b, f"{b.value:g} GB/s per core ({b.low:g}-{b.high:g})"
    width = "avx512" if "avx512f" in isa else "avx2" if {"avx2", "fma"} <= isa else "none"
    flops = HOST_ASSUMED_FLOPS_PER_CYCLE[width]
    rate = precision_rate(precision, isa)
    clock = HOST_ASSUMED_CLOCK_GHZ
    text = (
        f"{flops.value:g} FLOP/cycle ({width}; {flops.low:g}-{flops.high:g}) x {clock.value:g} GHz "
        f"({clock.low:g}-{clock.high:g}) x {rate.value:g} ({precision}, "
        f"{isa_class(precision, isa)})"
    )
    return flops * clock * rate, text


def workers_per_server(
    server: Server,
    threads_per_worker: int,
    rss_mb_per_worker: float,
    reserve_cores: int = 1,
    reserve_memory_gb: float = 2.0,
) -> tuple[int, str]:
    """How many workers fit on one server, and what limits them ("cores" or "memory").

    Cores: the physical cores that run workers (P-cores on hybrid parts; SMT siblings not
    counted, see FORMULA), less `reserve_cores` for the OS and the ingress, taken from the
    E-cores first where there are any. Memory: `memory_gb - reserve_memory_gb` over the peak
    RSS of a worker; a worker RSS that was not measured (NaN, 0) leaves cores as the only limit.
    """
    if threads_per_worker < 1:
        raise ValueError(f"threads_per_worker: must be >= 1, got {threads_per_worker}")
    cpu = server.cpu
    reserved_on_workers = max(0, reserve_cores - cpu.e_cores)
    by_cores = max(0, (worker_cores(cpu) - reserved_on_workers) // threads_per_worker)
    if not _positive(rss_mb_per_worker):
        return by_cores, "cores (worker memory not measured)"
    by_memory = max(
        0, math.floor((server.memory_gb - reserve_memory_gb) * 1024 / rss_mb_per_worker)
    )
    if by_memory < by_cores:
        return by_memory, "memory"
    return by_cores, "cores"


GPU_NOT_MEASURED = "not measured"
GPU_RUN_AVAILABLE = "GPU run in results"
NO_GPU = "no GPU"


def gpu_status(server: Server, results_have_gpu: bool) -> str:
    """What the planner can say about a server's GPUs: sized from GPU runs only, never scaled
    from CPU measurements."""
    if not server.gpus:
        return NO_GPU
    return GPU_RUN_AVAILABLE if results_have_gpu else GPU_NOT_MEASURED


def host_scale(
    source: Mapping[str, Any], target: Mapping[str, Any], precision: str, backend: str | None
) -> Scale:
    """How one worker thread's throughput on host `target` compares with one on host `source`,
    both measured: the ratio of their calibrations (`calib_*` in their rows), with the model's
    library's figure where both have it. One calibration (the same host), or one CPU model and
    core count where either is uncalibrated: factor 1 in MEASURED_BAND. Either side
    uncalibrated otherwise: its figure assumed from its ISA flags (spec-only)."""
    inputs = {
        "from_cpu_model": source.get("host_cpu_model"),
        "to_cpu_model": target.get("host_cpu_model"),
        "precision": precision,
    }
    keys = [_calibration_key(host, precision, "compute", backend) for host in (target, source)]
    same_key = bool(source.get("calib_host_key")) and (
        source.get("calib_host_key") == target.get("calib_host_key")
    )
    same_cpu = (source.get("host_cpu_model"), source.get("host_cores")) == (
        target.get("host_cpu_model"),
        target.get("host_cores"),
    )
    if same_key or (same_cpu and not all(keys)):
        band = MEASURED_BAND
        return Scale(band.value, band.low, band.high, "measured", "the same host: 1", inputs)
    sides, texts, tags = [], [], []
    for host, key in zip((target, source), keys, strict=True):
        if key:
            band, text = _measured(host, key)
        else:
            band, text = _assumed_host(isa_flags(host.get("host_isa", "")), precision, "compute")
            text = f"assumed: {text}"
        sides.append(band)
        texts.append(text)
        tags.append("calibrated" if key else "spec-only")
    ratio = sides[0] / sides[1]
    tag = "calibrated" if tags == ["calibrated", "calibrated"] else "spec-only"
    formula = f"{tag}: ({texts[0]}) / ({texts[1]}) = {ratio.value:.3g}"
    return Scale(ratio.value, ratio.low, ratio.high, tag, formula, inputs)
