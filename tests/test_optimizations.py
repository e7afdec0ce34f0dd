"""Optimizations on real modules: what each changes, how it composes with each backend, and
the accuracy drift the harness measures for it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.backends import build_predictor
from bench.backends.accuracy import compare
from bench.backends.pruning import prune_magnitude, prune_structured
from bench.config.backend import (
    OnnxRuntimeBackendConfig,
    TorchBackendConfig,
    TorchCompileBackendConfig,
)
from bench.config.model import MLPConfig
from bench.config.optimization import (
    Bf16Config,
    Fp16Config,
    Int8DynamicConfig,
    Int8StaticConfig,
    NoOptimizationConfig,
    PruneMagnitudeConfig,
)
from bench.cpu import has_vnni
from bench.models import build_model
from bench.registry import options
from bench.run import run_benchmark
from bench.validation import ConfigError
from tests.conftest import compose

SCHEMAS = options()

MLP = MLPConfig(in_features=32, hidden=[64, 64], out_features=8)

# What each backend can run on a CPU; everything else must be refused with a ConfigError.
RUNS_ON_CPU = {
    "torch": {"none", "int8_dynamic", "bf16", "prune_structured", "prune_magnitude"},
    "onnxruntime": {"none", "int8_dynamic", "int8_static", "prune_structured", "prune_magnitude"},
}


@pytest.fixture(scope="module")
def mlp():
    return build_model(MLP)


@pytest.mark.parametrize("backend_cls", [TorchBackendConfig, OnnxRuntimeBackendConfig])
@pytest.mark.parametrize("opt_name", sorted(SCHEMAS["optimization"]))
def test_every_optimization_runs_or_is_refused_by_name(mlp, backend_cls, opt_name, cache_dir):
    backend, opt = backend_cls(threads=1), SCHEMAS["optimization"][opt_name]()
    if opt_name not in RUNS_ON_CPU[backend.name]:
        with pytest.raises(ConfigError, match=f"optimization={opt_name}"):
            build_predictor(mlp, backend, opt, cache_dir)
        return
    predictor = build_predictor(mlp, backend, opt, cache_dir)
    samples = mlp.samples(5, 1)
    out = predictor.predict(samples)
    assert out.shape == (5, 8) and np.isfinite(out).all()
    expected = {"int8_dynamic": "int8", "int8_static": "int8", "bf16": "bf16"}
    assert predictor.info.precision == expected.get(opt_name, "fp32")


def test_precision_changes_are_small_and_measured(mlp, cache_dir):
    reference = build_predictor(mlp, TorchBackendConfig(), NoOptimizationConfig(), cache_dir)
    samples = mlp.samples(32, 2)
    expected = reference.predict(samples)
    for backend, opt in [
        (TorchBackendConfig(), Int8DynamicConfig()),
        (OnnxRuntimeBackendConfig(), Int8DynamicConfig()),
        (OnnxRuntimeBackendConfig(), Int8StaticConfig()),
        (TorchBackendConfig(), Bf16Config()),
    ]:
        served = build_predictor(mlp, backend, opt, cache_dir).predict(samples)
        drift = compare(served, expected, "logits")
        assert 0 < drift["accuracy_max_abs_diff"] < 0.1, (backend.name, opt.name)
        assert drift["accuracy_cosine_min"] > 0.99, (backend.name, opt.name)


def test_int8_files_are_smaller_than_fp32(mlp, cache_dir):
    ort = OnnxRuntimeBackendConfig()
    fp32 = build_predictor(mlp, ort, NoOptimizationConfig(), cache_dir).info.model_bytes
    for opt in (Int8DynamicConfig(), Int8StaticConfig()):
        assert build_predictor(mlp, ort, opt, cache_dir).info.model_bytes < 0.5 * fp32


def test_structured_pruning_really_shrinks_the_matrices(mlp):
    module, facts = prune_structured(mlp.load_module(), 0.25)
    widths = [m.out_features for m in module if isinstance(m, torch.nn.Linear)]
    assert widths == [48, 48, 8]
    assert facts == {"pruned_blocks": 2, "hidden_neurons_before": 128, "hidden_neurons_after": 96}
    assert module(torch.randn(3, 32)).shape == (3, 8)


def test_structured_pruning_finds_minilm_feed_forward_blocks():
    from bench.config.model import MiniLMConfig

    bundle = build_model(MiniLMConfig())
    module, facts = prune_structured(bundle.load_module(), 0.5)
    assert facts["pruned_blocks"] == 6
    assert facts["hidden_neurons_after"] == 6 * 768
    inputs = bundle.preprocess(["A sentence to embed."])
    with torch.inference_mode():
        out = module(*(torch.from_numpy(inputs[n]) for n in bundle.input_names))
    assert out.shape == (1, 384)


def test_magnitude_pruning_zeroes_weights_but_keeps_shapes(mlp):
    module, facts = prune_magnitude(mlp.load_module(), 0.6)
    assert facts["sparsity"] == pytest.approx(0.6, abs=0.01)
    weights = torch.cat([m.weight.flatten() for m in module if isinstance(m, torch.nn.Linear)])
    assert (weights == 0).float().mean().item() == pytest.approx(0.6, abs=0.01)


def test_magnitude_pruning_shrinks_the_compressed_file_only(mlp, cache_dir):
    ort = OnnxRuntimeBackendConfig()
    dense = build_predictor(mlp, ort, NoOptimizationConfig(), cache_dir).info
    sparse = build_predictor(mlp, ort, PruneMagnitudeConfig(amount=0.8), cache_dir).info
    assert sparse.model_bytes == pytest.approx(dense.model_bytes, rel=0.05)
    assert sparse.model_compressed_bytes < 0.6 * dense.model_compressed_bytes


def test_fp16_needs_a_gpu(mlp, cache_dir):
    with pytest.raises(ConfigError, match="backend.device=cuda"):
        build_predictor(mlp, TorchBackendConfig(), Fp16Config(), cache_dir)


def test_torch_compile_records_its_compile_time_and_cache(mlp, tmp_path):
    cfg = TorchCompileBackendConfig(threads=1, inductor_cache_dir=str(tmp_path / "inductor"))
    predictor = build_predictor(mlp, cfg, NoOptimizationConfig(), str(tmp_path))
    assert predictor.info.compile_cache == "cold"
    assert predictor.info.compile_s > 0
    assert any((tmp_path / "inductor").iterdir())
    eager = build_predictor(mlp, TorchBackendConfig(), NoOptimizationConfig(), str(tmp_path))
    samples = mlp.samples(3, 4)
    np.testing.assert_allclose(predictor.predict(samples), eager.predict(samples), atol=1e-5)


def test_a_point_under_the_accuracy_floor_is_invalid(tmp_path, cache_dir):
    cfg = compose(
        [
            "model=mlp",
            "optimization=prune_magnitude",
            "optimization.amount=0.95",
            "accuracy_floor=0.999",
            "scenario=single_stream",
            "scenario.warmup_s=0.1",
            "scenario.duration_s=0.3",
            "progress=false",
            f"cache_dir={cache_dir}",
        ]
    )
    row = run_benchmark(cfg, tmp_path).iloc[0]
    assert "accuracy below floor: top-1 agreement" in row["invalid_reasons"]
    assert row["predictor_precision"] == "fp32"
    assert '"sparsity"' in row["predictor_facts"]


def test_ort_int8_dynamic_reduces_the_weight_range_where_the_cpu_lacks_vnni(mlp, cache_dir):
    """Without VNNI, u8 x s8 kernels saturate on 8-bit weights (the seeded MLP's cosine fell to
    0.965 on an AVX2-only EPYC): by default the weights get 7 bits there, and the row says so."""
    ort = OnnxRuntimeBackendConfig(threads=1)
    chosen = build_predictor(mlp, ort, Int8DynamicConfig(), cache_dir).info.facts
    assert chosen == {"reduce_range": not has_vnni()}
    for pinned in (True, False):
        opt = Int8DynamicConfig(reduce_range=pinned)
        assert build_predictor(mlp, ort, opt, cache_dir).info.facts == {"reduce_range": pinned}
