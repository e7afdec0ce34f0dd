"""A user's own model as `model=python model.target=tests.user_model_example:build` loads it:
token ids and a mask in, class logits out."""

from __future__ import annotations

import numpy as np

VOCAB, TOKENS, CLASSES = 10, 5, 3


def build():
    """The contract of `bench.models.user`: `(module, make_inputs)`."""
    import torch

    class BagOfTokens(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(VOCAB, 8)
            self.head = torch.nn.Linear(8, CLASSES)

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            pooled = (self.embed(ids) * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
            return self.head(pooled)

    def make_inputs(batch_size: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        mask = np.ones((batch_size, TOKENS), dtype=np.float32)
        mask[:, 3:] = rng.integers(0, 2, size=(batch_size, 2))
        return {"ids": rng.integers(0, VOCAB, size=(batch_size, TOKENS)), "mask": mask}

    # Seeded, as the contract asks, without disturbing the caller's random state.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        module = BagOfTokens().eval()
    return module, make_inputs
