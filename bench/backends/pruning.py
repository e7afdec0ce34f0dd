"""Pruning: structured (whole feed-forward neurons removed, so every matrix multiply shrinks)
and magnitude (single weights zeroed, which dense kernels still multiply)."""

from __future__ import annotations

import torch
from torch import nn

from bench.validation import ConfigError


def _ffn_pairs(module: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """(parent, up, down) attribute paths of feed-forward blocks: `up` widens into hidden
    neurons that only `down` reads, so a neuron can go from both without changing shapes seen
    by anything else. BERT-style layers (intermediate.dense / output.dense) and
    Linear-activation-Linear runs inside nn.Sequential are recognised."""
    pairs: list[tuple[nn.Module, str, str]] = []
    for sub in module.modules():
        inter, out = getattr(sub, "intermediate", None), getattr(sub, "output", None)
        if isinstance(getattr(inter, "dense", None), nn.Linear) and isinstance(
            getattr(out, "dense", None), nn.Linear
        ):
            pairs.append((sub, "intermediate.dense", "output.dense"))
        if isinstance(sub, nn.Sequential):
            children = list(sub)
            for i in range(len(children) - 2):
                a, act, b = children[i : i + 3]
                if (
                    isinstance(a, nn.Linear)
                    and isinstance(b, nn.Linear)
                    and not isinstance(act, nn.Linear)
                ):
                    pairs.append((sub, str(i), str(i + 2)))
    return pairs


def _get(parent: nn.Module, path: str) -> nn.Linear:
    return parent.get_submodule(path)


def _set(parent: nn.Module, path: str, value: nn.Module) -> None:
    owner, _, name = path.rpartition(".")
    setattr(parent.get_submodule(owner) if owner else parent, name, value)


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


@torch.no_grad()
def prune_structured(module: nn.Module, amount: float) -> tuple[nn.Module, dict]:
    """Remove `amount` of each feed-forward block's hidden neurons, least important first
    (importance: norm of the neuron's input row times norm of its output column)."""
    pairs = _ffn_pairs(module)
    if not pairs:
        raise ConfigError(
            "optimization=prune_structured: this model has no feed-forward blocks it can shrink "
            "(BERT-style layers or Linear-activation-Linear runs); use prune_magnitude instead"
        )
    before = after = 0
    for parent, up_path, down_path in pairs:
        up, down = _get(parent, up_path), _get(parent, down_path)
        hidden = up.out_features
        keep = max(1, round(hidden * (1.0 - amount)))
        importance = up.weight.norm(dim=1) * down.weight.norm(dim=0)
        kept = torch.sort(torch.topk(importance, keep).indices).values
        _set(parent, up_path, _linear(up.weight[kept], None if up.bias is None else up.bias[kept]))
        _set(parent, down_path, _linear(down.weight[:, kept], down.bias))
        before, after = before + hidden, after + keep
    facts = {
        "pruned_blocks": len(pairs),
        "hidden_neurons_before": before,
        "hidden_neurons_after": after,
    }
    return module.eval(), facts


@torch.no_grad()
def prune_magnitude(module: nn.Module, amount: float) -> tuple[nn.Module, dict]:
    """Zero the `amount` smallest-magnitude weights across all Linear layers (global)."""
    weights = [m.weight for m in module.modules() if isinstance(m, nn.Linear)]
    if not weights:
        raise ConfigError("optimization=prune_magnitude: this model has no Linear layers")
    magnitudes = torch.cat([w.abs().flatten() for w in weights])
    threshold = torch.kthvalue(magnitudes, max(1, int(amount * magnitudes.numel()))).values
    zeroed = 0
    for w in weights:
        mask = w.abs() <= threshold
        w[mask] = 0.0
        zeroed += int(mask.sum())
    return module.eval(), {"sparsity": zeroed / magnitudes.numel()}
