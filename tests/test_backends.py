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
    assert same["accuracy_note"] == ""


@pytest.mark.parametrize(
    "served, named",
    [
        (np.ones(32, dtype=np.float32), "shape (32,) and dtype float32"),  # one value per item
        (np.ones((32, 64), dtype=np.int64), "shape (32, 64) and dtype int64"),
    ],
)
def test_accuracy_refuses_outputs_of_another_shape_or_dtype(served, named):
    """An endpoint answering one value per item must not broadcast against 64 per item."""
    ref = np.random.default_rng(0).standard_normal((32, 64)).astype(np.float32)
    row = compare(served, ref, "embedding")
    assert np.isnan(row["accuracy_cosine_min"]) and np.isnan(row["accuracy_max_abs_diff"])
    assert row["accuracy_note"].startswith("refused: ")
    assert (
        named in row["accuracy_note"] and "shape (32, 64) and dtype float32" in row["accuracy_note"]
    )
    # A narrower float is drift to measure, not a refusal.
    assert compare(ref.astype(np.float16), ref, "embedding")["accuracy_note"] == ""


def test_reference_outputs_are_cached(tmp_path):
    bundle = build_model(MLPConfig())
    first = reference_outputs(bundle, 4, str(tmp_path))
    files = list((tmp_path / "reference").iterdir())
    assert len(files) == 1
    np.testing.assert_array_equal(reference_outputs(bundle, 4, str(tmp_path)), first)


def test_thread_candidates_and_the_choice_of_the_fewest_near_the_fastest():
    from bench.backends.threads import candidates, choose

    assert candidates(1) == [1] and candidates(2) == [1, 2] and candidates(6) == [1, 2, 4, 6]
    # Two threads' idle wake-ups made the MLP slower: one wins.
    assert choose({1: 0.55e-3, 2: 6.3e-3}) == 1
    # Four is barely faster than two: not worth two more cores.
    assert choose({1: 4.0e-3, 2: 2.1e-3, 4: 2.0e-3}) == 2


def test_threads_are_probed_unless_pinned(tmp_path):
    import torch

    bundle = build_model(MLPConfig())
    before = torch.get_num_threads()
    try:
        probed = build_predictor(bundle, TorchBackendConfig(max_threads=2), NONE, str(tmp_path))
        info = probed.info
        assert info.threads in (1, 2) and torch.get_num_threads() == info.threads
        assert info.threads_choice.startswith("probed") and f"chose {info.threads}" in (
            info.threads_choice
        )
        assert "; back to back 1: " in info.threads_choice
        # Remembered: a worker started again does not probe inside its start-up.
        again = build_predictor(bundle, TorchBackendConfig(max_threads=2), NONE, str(tmp_path))
        assert again.info.threads == info.threads
        assert again.info.threads_choice == (
            f"remembered from an earlier probe on this host: {info.threads_choice}"
        )
        pinned = build_predictor(bundle, TorchBackendConfig(threads=2), NONE, str(tmp_path))
        assert pinned.info.threads == 2
        assert pinned.info.as_row()["predictor_threads_choice"] == "pinned: backend.threads=2"
    finally:
        torch.set_num_threads(before)


def test_a_cpu_quota_caps_the_threads_a_probe_tries(tmp_path):
    """In a cgroup with a CFS quota of half a core (as `--cpus=0.5` or a 500m limit sets), the
    predictor may run on both cores but gets one core's worth: one thread, not a probe."""
    import subprocess
    import sys
    import uuid

    from runners.cgroups import v1_hierarchy, v2_hierarchy

    v1 = v1_hierarchy("cpu")
    v2 = v2_hierarchy()
    group = None
    if v1 is not None:
        group = v1 / f"bench-test-{uuid.uuid4().hex[:8]}"
        quota_file, quota = "cpu.cfs_quota_us", "50000"
    elif v2 is not None and "cpu" in (v2 / "cgroup.controllers").read_text().split():
        group = v2 / f"bench-test-{uuid.uuid4().hex[:8]}"
        quota_file, quota = "cpu.max", "50000 100000"
    try:
        group.mkdir()
        (group / quota_file).write_text(quota)
    except (AttributeError, OSError):
        pytest.skip("no writable cgroup cpu controller here")
    script = (
        "import os, sys\n"
        f"open({str(group / 'cgroup.procs')!r}, 'w').write(str(os.getpid()))\n"
        "from bench.cpu import cpu_quota_cores\n"
        "from bench.backends.threads import available_cores\n"
        "print(cpu_quota_cores(), len(os.sched_getaffinity(0)), available_cores())\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.split()
    finally:
        group.rmdir()
    assert float(out[0]) == 0.5
    assert int(out[2]) == 1 <= int(out[1])
