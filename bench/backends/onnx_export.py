"""Export a model to ONNX once, cached by the content hash of its weights and export settings."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.models.base import ModelBundle
from bench.validation import ConfigError

# Bump when the export call below changes in a way that changes the graph.
_EXPORTER_VERSION = "torch.onnx-dynamo-1"


def onnx_path(
    bundle: ModelBundle,
    cache_dir: str,
    opset: int,
    variant: str = "",
    transform: Callable[[Any], Any] | None = None,
) -> Path:
    """Where the export of `bundle` lives; exported now if it is not there yet. A `variant`
    names a `transform` of the torch module (pruning) applied before export. A model given as
    an ONNX file is its own export."""
    if bundle.onnx_file is not None:
        if transform is not None:
            raise ConfigError(
                f"model=onnx_file: {variant or 'this optimization'} changes the torch module "
                "before export, and an ONNX file has none; use model=torch_file or model=python"
            )
        return bundle.onnx_file
    names = "-".join((*bundle.input_names, bundle.output_name))
    digest = hashlib.sha256(f"{names}|{opset}|{_EXPORTER_VERSION}".encode()).hexdigest()[:8]
    key = f"{bundle.name}-{bundle.fingerprint()}-{digest}" + (f"-{variant}" if variant else "")
    folder = Path(cache_dir).expanduser() / "onnx"
    path = folder / f"{key}.onnx"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        module = bundle.load_module()
        _export(bundle, module if transform is None else transform(module), path, opset)
    return path


def _export(bundle: ModelBundle, module: Any, path: Path, opset: int) -> None:
    import torch

    # Two samples so no exported dimension is specialised to 1.
    example = bundle.preprocess(bundle.samples(2, 0))
    args = tuple(torch.from_numpy(example[name]) for name in bundle.input_names)
    # Write next to the target and rename: a crash or a concurrent export never leaves half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        # The exporter narrates every step; a benchmark's console is for progress and results.
        onnx_logger = logging.getLogger("torch.onnx")
        level = onnx_logger.level
        onnx_logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                tmp,
                input_names=list(bundle.input_names),
                output_names=[bundle.output_name],
                dynamic_axes=bundle.dynamic_axes,
                opset_version=opset,
                # torch.export, under the dynamo exporter, cannot trace a TorchScript module
                # (a user's torch.jit file); the TorchScript exporter reads its graph directly.
                dynamo=not isinstance(module, torch.jit.ScriptModule),
                external_data=False,
                verbose=False,
            )
        os.replace(tmp, path)
    finally:
        onnx_logger.setLevel(level)
        if os.path.exists(tmp):
            os.unlink(tmp)
