"""GPU paths: torch on CUDA (fp32 and fp16) and ONNX Runtime's CUDA provider, against the CPU
reference. They run where a GPU exists and are skipped, saying so, everywhere else."""

from __future__ import annotations

import numpy as np
import pytest

from bench.backends import build_predictor
from bench.backends.accuracy import compare
from bench.config.backend import OnnxRuntimeBackendConfig, TorchBackendConfig
from bench.config.model import MLPConfig
from bench.config.optimization import Fp16Config, NoOptimizationConfig
from bench.metrics import gpu_names
from bench.models import build_model

pytestmark = pytest.mark.skipif(not gpu_names(), reason="no GPU on this machine (NVML sees none)")


@pytest.fixture(scope="module")
def mlp_and_reference(cache_dir):
    bundle = build_model(MLPConfig())
    samples = bundle.samples(16, 5)
    cpu = build_predictor(bundle, TorchBackendConfig(), NoOptimizationConfig(), cache_dir)
    return bundle, samples, cpu.predict(samples)


@pytest.mark.parametrize("opt, cosine", [(NoOptimizationConfig(), 0.99999), (Fp16Config(), 0.999)])
def test_torch_on_cuda_matches_the_cpu_reference(mlp_and_reference, cache_dir, opt, cosine):
    bundle, samples, reference = mlp_and_reference
    gpu = build_predictor(bundle, TorchBackendConfig(device="cuda"), opt, cache_dir)
    assert gpu.info.provider == "torch-cuda"
    assert compare(gpu.predict(samples), reference, "logits")["accuracy_cosine_min"] > cosine


def test_onnxruntime_cuda_provider_is_really_active(mlp_and_reference, cache_dir):
    bundle, samples, reference = mlp_and_reference
    cfg = OnnxRuntimeBackendConfig(provider="CUDAExecutionProvider")
    gpu = build_predictor(bundle, cfg, NoOptimizationConfig(), cache_dir)
    assert gpu.info.provider == "CUDAExecutionProvider"
    np.testing.assert_allclose(gpu.predict(samples), reference, atol=1e-3)
