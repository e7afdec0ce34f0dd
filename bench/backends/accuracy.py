"""Accuracy drift: a served model's outputs against the fp32 reference of the same model: torch
eager, or, for a model given as an ONNX file (no torch module), ONNX Runtime on CPU on the file.

The reference outputs are computed once per model and evaluation set and cached by the model's
fingerprint, so a run of another backend compares against exactly the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.backends.base import Predictor
from bench.models.base import ModelBundle

EVAL_SEED = 20_240_601  # evaluation inputs are drawn apart from any load point's inputs


def eval_samples(bundle: ModelBundle, count: int) -> list:
    return bundle.samples(count, EVAL_SEED)


def reference_outputs(bundle: ModelBundle, count: int, cache_dir: str) -> np.ndarray:
    """fp32 reference outputs, one sample per call, for the first `count` eval samples."""
    folder = Path(cache_dir).expanduser() / "reference"
    path = folder / f"{bundle.name}-{bundle.fingerprint()}-{EVAL_SEED}-{count}.npy"
    if path.exists():
        return np.load(path)
    predictor = _reference_predictor(bundle, cache_dir)
    outputs = np.concatenate([predictor.predict([s]) for s in eval_samples(bundle, count)])
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, outputs)
    tmp.replace(path)
    return outputs


def _reference_predictor(bundle: ModelBundle, cache_dir: str) -> Predictor:
    # Imported here, so that a process serving with one runtime never imports the other.
    if bundle.load_module is None:
        from bench.backends.onnxruntime import OnnxRuntimePredictor
        from bench.config.backend import OnnxRuntimeBackendConfig

        return OnnxRuntimePredictor(bundle, OnnxRuntimeBackendConfig(), None, cache_dir)
    from bench.backends.torch_eager import TorchPredictor
    from bench.config.backend import TorchBackendConfig

    return TorchPredictor(bundle, TorchBackendConfig())


class AccuracyRefused(ValueError):
    """Served outputs that cannot be compared with the reference as they are."""


def check_comparable(served: np.ndarray, reference: np.ndarray) -> None:
    """Refuse outputs whose shape differs from the reference's (NumPy would broadcast a
    (32, 1) answer against a (32, 64) reference and report numbers that mean nothing), or
    whose dtype is of another kind (integers, strings for floats). A narrower float (fp16 or
    bf16 served, fp32 reference) is allowed: that difference is the drift being measured."""
    if served.shape != reference.shape or served.dtype.kind != reference.dtype.kind:
        raise AccuracyRefused(
            f"served outputs of shape {served.shape} and dtype {served.dtype} differ from the "
            f"reference's, shape {reference.shape} and dtype {reference.dtype}; not compared "
            "(no reshaping, no broadcasting)"
        )


def compare(served: np.ndarray, reference: np.ndarray, output_kind: str) -> dict:
    """Result columns: max absolute difference, worst cosine similarity, top-1 agreement, and
    `accuracy_note`, empty when they were measured, else why they are empty (outputs that
    `check_comparable` refuses)."""
    try:
        check_comparable(served, reference)
    except AccuracyRefused as exc:
        return not_measured(f"refused: {exc}")
    served = served.reshape(len(served), -1).astype(np.float64)
    reference = reference.reshape(len(reference), -1).astype(np.float64)
    norms = np.linalg.norm(served, axis=1) * np.linalg.norm(reference, axis=1)
    cosine = np.sum(served * reference, axis=1) / np.maximum(norms, 1e-30)
    row = {
        "accuracy_max_abs_diff": float(np.max(np.abs(served - reference))),
        "accuracy_cosine_min": float(np.min(cosine)),
        "accuracy_top1_agreement": np.nan,
        "accuracy_note": "",
    }
    if output_kind == "logits":
        agree = np.argmax(served, axis=1) == np.argmax(reference, axis=1)
        row["accuracy_top1_agreement"] = float(agree.mean())
    return row


def not_measured(why: str) -> dict:
    """The accuracy columns of a point whose accuracy was not measured, saying why."""
    return {
        "accuracy_max_abs_diff": np.nan,
        "accuracy_cosine_min": np.nan,
        "accuracy_top1_agreement": np.nan,
        "accuracy_note": why,
    }
