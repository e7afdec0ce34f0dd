"""Real models through real backends: outputs agree, providers are checked, exports cached."""

from __future__ import annotations

import numpy as np
import pytest

from bench.backends import BackendError, build_predictor
from bench.backends.accuracy import compare, reference_outputs
from bench.backends.onnx_export import onnx_path
from bench.config.backend import OnnxRuntimeBackendConfig, TorchBackendConfig
from bench.config.model import MiniLMConfig, MLPConfig
from bench.config.optimization import NoOptimizationConfig
from bench.metrics import gpu_names
from bench.models import build_model

NONE = NoOptimizationConfig()


@pytest.fixture(scope="module")
def minilm():
    return build_model(MiniLMConfig())


def test_mlp_torch_and_onnxruntime_agree(cache_dir):
    bundle = build_model(MLPConfig())
    torch_p = build_predictor(bundle, TorchBackendConfig(threads=1), NONE, cache_dir)
    ort_p = build_predictor(bundle, OnnxRuntimeBackendConfig(threads=1), NONE, cache_dir)
    for batch in (1, 7):
        samples = bundle.samples(batch, seed=batch)
        a, b = torch_p.predict(samples), ort_p.predict(samples)
        assert a.shape == b.shape == (batch, 64)
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert ort_p.info.provider == "CPUExecutionProvider"
    assert ort_p.info.model_bytes > 0


@pytest.mark.slow
def test_minilm_torch_and_onnxruntime_agree_on_real_sentences(minilm, cache_dir):
    torch_p = build_predictor(minilm, TorchBackendConfig(), NONE, cache_dir)
    ort_p = build_predictor(minilm, OnnxRuntimeBackendConfig(), NONE, cache_dir)
    # Varied lengths in one batch: padding and the attention mask must be honoured by both.
    sentences = minilm.samples(6, seed=3) + ["Hi."]
    a, b = torch_p.predict(sentences), ort_p.predict(sentences)
    assert a.shape == (7, 384)
    np.testing.assert_allclose(a, b, atol=1e-4)
    # A single sentence gives the same embedding alone as inside a padded batch.
    np.testing.assert_allclose(ort_p.predict(["Hi."])[0], b[-1], atol=1e-5)


@pytest.mark.slow
def test_minilm_embeddings_carry_meaning(minilm, cache_dir):
    predictor = build_predictor(minilm, OnnxRuntimeBackendConfig(), NONE, cache_dir)
    a, b, c = predictor.predict(
        [
            "How do I reset my password?",
            "I forgot my password and need to change it.",
            "The recipe calls for fresh basil and garlic.",
        ]
    )
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-4)
    assert float(a @ b) > 0.6 > float(a @ c)


def test_onnx_export_is_cached_by_content(cache_dir, tmp_path):
    bundle = build_model(MLPConfig(hidden=[32]))
    first = onnx_path(bundle, str(tmp_path), 18)
    stamp = first.stat().st_mtime_ns
    assert onnx_path(bundle, str(tmp_path), 18) == first
    assert first.stat().st_mtime_ns == stamp
    other = onnx_path(build_model(MLPConfig(hidden=[32], seed=1)), str(tmp_path), 18)
    assert other != first
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.skipif(bool(gpu_names()), reason="a GPU is present: CUDA may really be active")
def test_asking_for_an_absent_provider_fails_instead_of_falling_back(cache_dir):
    bundle = build_model(MLPConfig())
    cfg = OnnxRuntimeBackendConfig(provider="CUDAExecutionProvider")
    with pytest.raises(BackendError, match="CUDAExecutionProvider asked for"):
        build_predictor(bundle, cfg, NONE, cache_dir)


def test_accuracy_compare_measures_drift():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((8, 10))
    same = compare(ref.copy(), ref, "logits")
    assert same["accuracy_max_abs_diff"] == 0.0
    assert same["accuracy_cosine_min"] == pytest.approx(1.0)
    assert same["accuracy_top1_agreement"] == 1.0
    flipped = ref.copy()
    flipped[0] = -flipped[0]
    drift = compare(flipped, ref, "logits")
    assert drift["accuracy_cosine_min"] == pytest.approx(-1.0)
    assert drift["accuracy_top1_agreement"] == pytest.approx(7 / 8)
    assert np.isnan(compare(ref, ref, "embedding")["accuracy_top1_agreement"])


def test_reference_outputs_are_cached(tmp_path):
    bundle = build_model(MLPConfig())
    first = reference_outputs(bundle, 4, str(tmp_path))
    files = list((tmp_path / "reference").iterdir())
    assert len(files) == 1
    np.testing.assert_array_equal(reference_outputs(bundle, 4, str(tmp_path)), first)
