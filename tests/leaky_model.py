"""A model that leaks: each call keeps 32 MB, so a worker under a memory limit is killed by
it within a few dozen requests (`model=python model.target=tests.leaky_model:build`)."""

from __future__ import annotations

import numpy as np

_KEPT = []  # what every call keeps alive
_LEAK_FLOATS = 8 * 1024 * 1024  # 32 MB of float32 per call, written so that it is resident


def build():
    import torch

    class Leaky(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            _KEPT.append(torch.ones(_LEAK_FLOATS))
            return x * 2.0

    def make_inputs(batch_size: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {"x": rng.standard_normal((batch_size, 4)).astype(np.float32)}

    return Leaky().eval(), make_inputs
