"""What every model gives the rest of the pipeline: raw samples, preprocessing, a torch module
(or, for a user's ONNX file, the file itself)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported only by code that runs torch (an ORT worker never does)
    import torch


@dataclass(frozen=True)
class ModelBundle:
    """A model as plain parts.

    `samples(count, seed)` makes raw requests' items (sentences, feature vectors);
    `preprocess(items)` turns a batch of them into named input arrays, and its cost is part of
    serving; `load_module()` builds the fp32 torch reference taking those arrays, in
    `input_names` order, and returning one output tensor; `fingerprint()` names the weights
    and architecture, so derived artefacts (ONNX exports) can be cached by content.

    A model given as an ONNX file has no torch module: `load_module` is None and `onnx_file`
    is the file, served as it is (no export) and its own fp32 reference. `artifact_files` are
    the files a user's model is loaded from (the ONNX file and any weights beside it, or the
    TorchScript / torch.export file), whose bytes are its identity; none for a model built in
    code.
    """

    name: str
    input_names: tuple[str, ...]
    output_name: str
    # Axes that vary per request, as torch.onnx.export's dynamic_axes wants them.
    dynamic_axes: dict[str, dict[int, str]]
    # "embedding" (compared by cosine similarity) or "logits" (compared by top-1 agreement).
    output_kind: str
    samples: Callable[[int, int], list[Any]]
    preprocess: Callable[[Sequence[Any]], dict[str, np.ndarray]]
    load_module: Callable[[], torch.nn.Module] | None
    fingerprint: Callable[[], str]
    onnx_file: Path | None = None
    artifact_files: tuple[Path, ...] = ()
    # Samples from a space large enough for workloads of many distinct requests
    # (`scenario.repeat_ratio`, `scenario.distinct`), for models whose `samples` repeat soon
    # (MiniLM draws from 50 sentences); None: `samples` is.
    varied_samples: Callable[[int, int], list[Any]] | None = None
    # A generative model's tokenizer (a transformers tokenizer), for the serving worker's
    # generation endpoints; None: the model does not generate.
    tokenizer: Callable[[], Any] | None = None
    # What a reader of results must know about the weights ("seeded random weights: ..."),
    # carried into the artifact's name (`model_artifact`); empty for real weights.
    weights_note: str = ""

    def distinct_source(self) -> Callable[[int, int], list[Any]]:
        """What payloads that must differ from each other are drawn from."""
        return self.varied_samples or self.samples
