"""Sequences decoded together: the rows of one key-value cache, as TGI's Python server keeps
them. Rows are left-padded to a common length (an attention mask marks the real tokens, and
each row's positions count its own tokens only), so a batch can take in sequences prefilled
apart (`merge`), let finished ones go between two decode steps (`keep`), and drop cache columns
that no row needs any more.

Pure tensor work on a transformers causal LM whose cache layers are all `DynamicLayer` (full
attention: Llama, GPT-2, Qwen2, Mistral without a sliding window): no threads, no clocks.

Every tensor the model is given is made in inference mode and the cache is kept contiguous, so
a `torch.compile`d model sees one kind of input at every step: an inference tensor beside a
plain one, or a cache laid out otherwise (a prefill's transposed view, a slice), fails its
compiled graph's guards and recompiles it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from runners.generation_messages import Sampling


@dataclass
class DecodeBatch:
    """`cache` holds `mask.shape[1]` columns for each of the rows; `lengths` counts each row's
    real tokens there; `last` is the token each row feeds next (the one it generated last)."""

    cache: Any
    mask: torch.Tensor  # (rows, columns), 1 for a real token, 0 for padding
    lengths: torch.Tensor  # (rows,)
    last: torch.Tensor  # (rows, 1)

    @property
    def rows(self) -> int:
        return len(self.lengths)

    @property
    def columns(self) -> int:
        return self.mask.shape[1]


class UnsupportedCache(RuntimeError):
    """A model whose cache cannot be batched this way (sliding-window or linear layers)."""


def _layers(cache: Any) -> list[Any]:
    from transformers.cache_utils import DynamicLayer

    layers = list(cache.layers)
    for layer in layers:
        if type(layer) is not DynamicLayer:
            raise UnsupportedCache(
                f"the model's cache has {type(layer).__name__} layers; continuous batching "
                "here batches full-attention DynamicLayer caches only"
            )
    return layers


def _choose(logits: torch.Tensor, sampling: Sequence[Sampling], generator: torch.Generator):
    """One token per row of `logits` (rows, vocabulary), on the CPU."""
    chosen = logits.argmax(dim=-1).cpu()
    for row, how in enumerate(sampling):
        if how.temperature <= 0:
            continue
        # On the CPU, where the generator is (a CUDA tensor cannot draw from it).
        probabilities = torch.softmax(logits[row].float().cpu() / how.temperature, dim=-1)
        if how.top_p < 1.0:
            ordered, order = probabilities.sort(descending=True)
            outside = ordered.cumsum(0) - ordered > how.top_p  # the first past top_p stays
            ordered[outside] = 0.0
            probabilities = torch.zeros_like(probabilities).scatter(0, order, ordered)
        chosen[row] = torch.multinomial(probabilities, 1, generator=generator)[0]
    return chosen


@torch.inference_mode()
def prefill(
    lm: Any,
    prompts: Sequence[Sequence[int]],
    sampling: Sequence[Sampling],
    generator: torch.Generator,
    pad_id: int,
) -> tuple[DecodeBatch, list[int]]:
    """Run the prompts together (left-padded) and choose each one's first token."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    device = lm.device
    out = lm(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        use_cache=True,
        logits_to_keep=1,
    )
    chosen = _choose(out.logits[:, -1], sampling, generator)
    for layer in _layers(out.cache):  # attention leaves them transposed views
        layer.keys, layer.values = layer.keys.contiguous(), layer.values.contiguous()
    batch = DecodeBatch(out.cache, mask, mask.sum(dim=1), chosen.unsqueeze(1))
    return batch, chosen.tolist()


@torch.inference_mode()
def step(
    lm: Any, batch: DecodeBatch, sampling: Sequence[Sampling], generator: torch.Generator
) -> list[int]:
    """Feed every row its last token; the next token of each, the batch one column longer."""
    mask = torch.cat([batch.mask, torch.ones((batch.rows, 1), dtype=torch.long)], dim=1)
    device = lm.device
    out = lm(
        input_ids=batch.last.to(device),
        attention_mask=mask.to(device),
        position_ids=batch.lengths.unsqueeze(1).to(device),
        cache=batch.cache,
        use_cache=True,
    )
    chosen = _choose(out.logits[:, -1], sampling, generator)
    batch.cache = out.cache
    batch.mask = mask
    batch.lengths = batch.lengths + 1
    batch.last = chosen.unsqueeze(1)
    return chosen.tolist()


def _pad_left(tensor: torch.Tensor, columns: int, dim: int) -> torch.Tensor:
    if columns == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = columns
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


@torch.inference_mode()
def merge(a: DecodeBatch, b: DecodeBatch) -> DecodeBatch:
    """One batch of `a`'s rows then `b`'s, the shorter left-padded to the longer."""
    width = max(a.columns, b.columns)
    for layer_a, layer_b in zip(_layers(a.cache), _layers(b.cache), strict=True):
        pad_a, pad_b = width - a.columns, width - b.columns
        layer_a.keys = torch.cat(
            [_pad_left(layer_a.keys, pad_a, -2), _pad_left(layer_b.keys, pad_b, -2)]
        )
        layer_a.values = torch.cat(
            [_pad_left(layer_a.values, pad_a, -2), _pad_left(layer_b.values, pad_b, -2)]
        )
    mask = torch.cat(
        [_pad_left(a.mask, width - a.columns, 1), _pad_left(b.mask, width - b.columns, 1)]
    )
    return DecodeBatch(
        a.cache, mask, torch.cat([a.lengths, b.lengths]), torch.cat([a.last, b.last])
    )


@torch.inference_mode()
def keep(batch: DecodeBatch, rows: Sequence[int]) -> DecodeBatch:
    """The batch of `rows` only, without the leading columns that none of them uses."""
    index = torch.tensor(list(rows), dtype=torch.long)
    mask = batch.mask[index]
    unused = int(batch.columns - batch.lengths[index].max())
    for layer in _layers(batch.cache):
        layer.keys = layer.keys[index.to(layer.keys.device), :, unused:].contiguous()
        layer.values = layer.values[index.to(layer.values.device), :, unused:].contiguous()
    return DecodeBatch(batch.cache, mask[:, unused:], batch.lengths[index], batch.last[index])


def warm_up(lm: Any, prompt: Sequence[int], pad_id: int) -> None:
    """Prefill `prompt` and take a decode step, as one row and as two: the shapes a compiled
    model builds its graphs for (torch specialises a size of 1; longer prompts, more rows and
    a longer cache reuse the graphs of two)."""
    generator = torch.Generator().manual_seed(0)
    for rows in (1, 2):
        sampling = [Sampling()] * rows
        batch, _ = prefill(lm, [prompt] * rows, sampling, generator, pad_id)
        step(lm, batch, sampling, generator)
