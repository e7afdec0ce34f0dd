"""The identity of the model a predictor serves: the SHA-256 of its artifact, as loaded.

- A model served from files (an ONNX file, whether a user's or exported and optimized into the
  cache; a user's TorchScript or torch.export file): the bytes of the file, so a lone file's
  hash is what `sha256sum FILE` prints. Weights kept beside an ONNX file count too: then the
  hash is over each file's name and hash, in name order.
- A model built in code (the built-in models, `model=python`) and served by torch: its fp32
  weights as built, before any optimization, tensor by tensor in name order (name, dtype,
  shape, then the raw bytes): the same weights give the same hash in any process.

The predictor computes it from what it loaded; the harness computes what it expects from the
same config (`expected_artifact`), and a run fails a point where the two differ.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config.backend import BackendConfig
from bench.config.optimization import OptimizationConfig
from bench.models.base import ModelBundle
from bench.registry import option_class


@dataclass(frozen=True)
class Artifact:
    """What a predictor serves: a name a person recognises, and its SHA-256 (hex)."""

    name: str
    sha256: str


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def files_artifact(paths: tuple[Path, ...] | list[Path]) -> Artifact:
    """The artifact of a model served from `paths` (the model file first)."""
    if len(paths) == 1:
        return Artifact(str(paths[0]), _file_digest(paths[0]))
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(f"{path.name}\0{_file_digest(path)}\n".encode())
    return Artifact(f"{paths[0]} (+{len(paths) - 1} weights files)", digest.hexdigest())


def weights_artifact(name: str, module: Any) -> Artifact:
    """The artifact of a torch module: its state, tensor by tensor in name order."""
    digest = hashlib.sha256()
    state = module.state_dict()
    for key in sorted(state):
        tensor = state[key]
        if not hasattr(tensor, "detach"):
            continue
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}\0{flat.dtype}\0{tuple(tensor.shape)}\n".encode())
        digest.update(flat.view(-1).numpy(force=True).view("uint8").tobytes())
    return Artifact(f"{name} weights ({len(state)} tensors)", digest.hexdigest())


def torch_artifact(bundle: ModelBundle, module: Any) -> Artifact:
    """What a torch predictor serves: the user's file where the model came from one, else the
    weights of `module` (the fp32 module as built, before any optimization)."""
    if bundle.artifact_files:
        return files_artifact(bundle.artifact_files)
    artifact = weights_artifact(bundle.name, module)
    if bundle.weights_note:
        return Artifact(f"{artifact.name}, {bundle.weights_note}", artifact.sha256)
    return artifact


def onnx_artifact(bundle: ModelBundle, path: Path) -> Artifact:
    """What an ONNX Runtime predictor serves from `path`: the user's ONNX file with its weights
    files, or the export (optimized) in the cache."""
    if bundle.onnx_file is not None and path == bundle.onnx_file:
        return files_artifact(bundle.artifact_files or (path,))
    return files_artifact((path,))


def expected_artifact(
    bundle: ModelBundle, backend: BackendConfig, optimization: OptimizationConfig, cache_dir: str
) -> Artifact:
    """The artifact a predictor built from this config should serve, computed here, apart
    from any worker: ONNX Runtime's (optimized) export, made now into the cache where it is not
    there yet (the workers then find it), or the torch model's file or weights."""
    if option_class("backend", backend.name).runs_onnx_files:
        from bench.backends.ort_optimize import optimized_onnx

        path, _, _ = optimized_onnx(bundle, optimization, cache_dir, backend.opset)
        return onnx_artifact(bundle, path)
    return torch_artifact(bundle, bundle.load_module())
