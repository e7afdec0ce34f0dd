"""A user's model that breaks `model=python`'s contract: `build()` leaves torch's random
initialisation unseeded, so every process that builds it (the harness, each worker) gets other
weights. The harness's integrity check must catch that the workers serve another model."""

from __future__ import annotations

import numpy as np


def build():
    import torch

    module = torch.nn.Linear(4, 3).eval()  # no torch.manual_seed: random in every process

    def make_inputs(batch_size: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {"x": rng.standard_normal((batch_size, 4), dtype=np.float32)}

    return module, make_inputs
