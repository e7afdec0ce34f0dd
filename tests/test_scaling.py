"""The scaling model from the measuring host to catalog servers: directions, tags and bands."""

from __future__ import annotations

import dataclasses
import math

import pytest

from bench.capacity.catalog import load_catalog
from bench.capacity.scaling import (
    FORMULA,
    GEMM_EFFICIENCY,
    TAGS,
    UNCERTAIN_WIDENING,
    core_sharing,
    gpu_status,
    scale,
    workers_per_server,
)

# A calibrated cloud VM that reports only "AMD EPYC" (figures of the order this project's
# Zen-5-class development VM measures).
HOST = {
    "host_cpu_model": "AMD EPYC",
    "host_cores": 2,
    "host_isa": "avx,avx2,fma,f16c,avx512f,avx512bw,avx512_vnni,avx512_bf16,avx_vnni",
    "calib_fp32_gflops_per_thread": 250.0,
    "calib_fp32_gflops_per_thread_torch": 115.0,
    "calib_fp32_gflops_per_thread_onnxruntime": 250.0,
    "calib_bf16_gflops_per_thread": 500.0,
    "calib_int8_gops_per_thread": 980.0,
    "calib_mem_bandwidth_gbs": 38.0,
    "calib_spread": 0.05,
}
UNCALIBRATED = {k: v for k, v in HOST.items() if not k.startswith("calib_")}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def per_server(catalog, server_id: str, precision: str, rss_mb: float = 500.0) -> float:
    """Host-worker equivalents one server carries: factor x workers."""
    server = catalog.server(server_id)
    workers, _ = workers_per_server(server, threads_per_worker=1, rss_mb_per_worker=rss_mb)
    return scale(HOST, server, precision).factor * workers


def test_a_16_core_zen4_carries_more_than_a_4_core_skylake_class_server(catalog):
    zen4 = per_server(catalog, "amd-ryzen-9-7950x", "int8")
    skylake = per_server(catalog, "intel-core-i7-6700k-7700", "int8")
    assert zen4 > 4 * skylake
    # Per worker too: a faster clock and VNNI against AVX2's int8 path.
    assert (
        scale(HOST, catalog.server("amd-ryzen-9-7950x"), "int8").factor
        > scale(HOST, catalog.server("intel-core-i7-6700k-7700"), "int8").factor
    )


def test_int8_gains_more_over_fp32_on_a_vnni_part_than_on_an_avx2_part(catalog):
    def int8_gain(server_id: str) -> float:
        server = catalog.server(server_id)
        return scale(HOST, server, "int8").factor / scale(HOST, server, "fp32").factor

    assert int8_gain("amd-ryzen-9-7950x") == pytest.approx(2 * int8_gain("amd-ryzen-9-5950x"))
    assert int8_gain("intel-core-i5-13500-64gb") > int8_gain("intel-core-i7-8700")


def test_bf16_without_native_support_scales_down(catalog):
    zen4, zen3 = catalog.server("amd-ryzen-9-7950x"), catalog.server("amd-ryzen-9-5950x")
    assert scale(HOST, zen3, "bf16").factor < scale(HOST, zen4, "bf16").factor / 4
    assert scale(HOST, zen3, "bf16").inputs["isa_class"] == "avx2"


def test_compute_factor_follows_the_formula(catalog):
    server = catalog.server("amd-ryzen-9-7950x")
    result = scale(HOST, server, "int8")
    expected = 32 * (4.5 + 5.7) / 2 * 4 * GEMM_EFFICIENCY.value / 980.0
    assert result.factor == pytest.approx(expected)
    assert result.inputs["isa_class"] == "vnni"
    assert "980" in result.formula and "5.1 GHz" in result.formula


def test_the_models_library_picks_its_calibration_figure(catalog):
    server = catalog.server("amd-ryzen-5-3600")
    best = scale(HOST, server, "fp32")
    torch = scale(HOST, server, "fp32", backend="torch")
    assert torch.factor == pytest.approx(best.factor * 250.0 / 115.0)
    assert "calib_fp32_gflops_per_thread_torch" in torch.formula
    # No per-library figure for bf16: the one measured is used.
    assert scale(HOST, server, "bf16", backend="torch").factor == pytest.approx(
        scale(HOST, server, "bf16").factor
    )


def test_memory_bound_scales_with_bandwidth_per_core(catalog):
    genoa, rome = catalog.server("amd-epyc-9454p"), catalog.server("amd-epyc-7502p-128gb-1tb")
    # 460.8 GB/s over 48 cores against 204.8 GB/s over 32.
    ratio = scale(HOST, genoa, "int8", "memory").factor / scale(HOST, rome, "int8", "memory").factor
    assert ratio == pytest.approx((460.8 / 48) / (204.8 / 32))
    doubled = dataclasses.replace(
        rome, cpu=dataclasses.replace(rome.cpu, mem_bandwidth_gbs=2 * rome.cpu.mem_bandwidth_gbs)
    )
    assert scale(HOST, doubled, "fp32", "memory").factor == pytest.approx(
        2 * scale(HOST, rome, "fp32", "memory").factor
    )
    assert "GB/s" in scale(HOST, rome, "fp32", "memory").formula


def test_tags(catalog):
    server = catalog.server("amd-ryzen-9-7950x")
    same_cpu = {**HOST, "host_cpu_model": "AMD Ryzen 9 7950X 16-Core Processor"}
    measured = scale(same_cpu, server, "int8")
    assert (measured.tag, measured.factor) == ("measured", 1.0)
    assert scale(HOST, server, "int8").tag == "calibrated"
    assert scale(UNCALIBRATED, server, "int8").tag == "spec-only"
    from_spec = scale(UNCALIBRATED, server, "int8", host_spec=catalog.cpus["amd-ryzen-5-3600"])
    assert from_spec.tag == "spec-only"
    assert "host spec Ryzen 5 3600" in from_spec.formula
    # Spec against spec: 7950X (32 x 5.1 GHz x VNNI 4) over 3600 (32 x 3.9 GHz x AVX2 2).
    assert from_spec.factor == pytest.approx((5.1 * 4) / (3.9 * 2))


def test_bands_contain_the_factor_and_widen_with_uncertain_inputs(catalog):
    for server in catalog.servers:
        for precision in ("fp32", "bf16", "int8"):
            for bound in ("compute", "memory"):
                for host in (HOST, UNCALIBRATED):
                    result = scale(host, server, precision, bound)
                    assert 0 < result.low <= result.factor <= result.high, result.formula
                    assert result.tag in TAGS
                    assert all(math.isfinite(v) for v in (result.low, result.high))
    server = catalog.server("amd-ryzen-9-7950x")
    certain = dataclasses.replace(server, cpu=dataclasses.replace(server.cpu, uncertain=()))
    doubtful = dataclasses.replace(
        server, cpu=dataclasses.replace(server.cpu, uncertain=("base_ghz", "boost_ghz"))
    )
    width = {}
    for name, variant in (("certain", certain), ("doubtful", doubtful)):
        result = scale(HOST, variant, "int8")
        width[name] = result.high / result.low
        assert result.factor == pytest.approx(scale(HOST, certain, "int8").factor)
    assert width["doubtful"] == pytest.approx(width["certain"] * UNCERTAIN_WIDENING**4)
    # Without a calibration, the host side is assumed too: a wider band.
    calibrated = scale(HOST, certain, "int8")
    spec_only = scale(UNCALIBRATED, certain, "int8")
    assert spec_only.high / spec_only.low > calibrated.high / calibrated.low


def test_uncertain_facts_used_are_named(catalog):
    result = scale(HOST, catalog.server("intel-core-i9-13900-64gb"), "fp32")
    assert "intel-core-i9-13900.base_ghz" in result.inputs["uncertain_inputs"]
    assert "intel-core-i9-13900.base_ghz" in result.formula
    memory = scale(HOST, catalog.server("intel-core-i9-13900-64gb"), "fp32", "memory")
    assert memory.inputs["uncertain_inputs"] == ["intel-core-i9-13900.mem_bandwidth_gbs"]


def test_workers_per_server_limited_by_cores_or_memory(catalog):
    epyc = catalog.server("amd-epyc-7502p-128gb-1tb")  # 32 cores, 64 threads, 128 GB
    assert workers_per_server(epyc, 1, 500.0) == (31, "cores")
    assert workers_per_server(epyc, 4, 500.0) == (7, "cores")
    # 20 GB per worker: (128 - 2) GB holds 6 of them.
    assert workers_per_server(epyc, 1, 20 * 1024.0) == (6, "memory")
    assert workers_per_server(epyc, 1, 200 * 1024.0) == (0, "memory")
    assert workers_per_server(epyc, 1, float("nan"))[0] == 31
    assert workers_per_server(epyc, 64, 500.0) == (0, "cores")


def test_hybrid_parts_run_workers_on_p_cores_and_reserve_e_cores(catalog):
    i9 = catalog.server("intel-core-i9-13900-64gb")  # 8P + 16E
    assert workers_per_server(i9, 1, 500.0) == (8, "cores")
    assert workers_per_server(i9, 2, 500.0) == (4, "cores")
    assert scale(HOST, i9, "fp32", "memory").inputs["worker_cores"] == 8


def test_gpu_servers_are_not_scaled_from_cpu_measurements(catalog):
    workstation = catalog.server("intel-core-i5-13500-workstation")
    assert gpu_status(workstation, results_have_gpu=False) == "not measured"
    assert gpu_status(workstation, results_have_gpu=True) != "not measured"
    assert gpu_status(catalog.server("amd-ryzen-5-3600"), results_have_gpu=False) == "no GPU"


def test_unknown_precision_or_bound_is_refused(catalog):
    server = catalog.server("amd-ryzen-5-3600")
    with pytest.raises(ValueError, match="precision"):
        scale(HOST, server, "fp16")
    with pytest.raises(ValueError, match="bound"):
        scale(HOST, server, "fp32", "latency")


def test_formula_states_the_constants():
    assert f"{GEMM_EFFICIENCY.value:g}" in FORMULA
    assert "vnni 4" in FORMULA and "SMT" in FORMULA


def test_a_core_slows_with_the_cores_busy_beside_it_as_the_host_measured():
    shared = {**HOST, "calib_core_sharing": 0.8}
    assert core_sharing(shared, busy=1, cores=8) == 1.0
    assert core_sharing(shared, busy=8, cores=8) == pytest.approx(0.8)
    assert core_sharing(shared, busy=64, cores=8) == pytest.approx(0.8)  # never below it
    assert 0.8 < core_sharing(shared, busy=4, cores=8) < 1.0
    # A calibration made before the figure existed, or nonsense in it, changes nothing.
    assert core_sharing(HOST, busy=8, cores=8) == 1.0
    assert core_sharing({**HOST, "calib_core_sharing": float("nan")}, busy=8, cores=8) == 1.0
    # The model's own figure, where its run measured one, stands in for the calibration's.
    assert core_sharing(shared, busy=8, cores=8, model=0.6) == pytest.approx(0.6)
    assert core_sharing(shared, busy=8, cores=8, model=float("nan")) == pytest.approx(0.8)
