"""The VAE's reparameterisation noise, drawn per sample from a seed of (run seed, epoch, step, place in the batch).

Why not the global RNG: a sample's noise then does not depend on which process draws it or on what else is in the
batch, so a step split over several processes (DDP) equals the single-process step, and a resumed run equals an
uninterrupted one, without saving RNG state.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["sample_noise"]


def sample_noise(seed: int, epoch: int, step: int, positions: Sequence[int], dim: int,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(len(positions), dim) standard normal; row k from the generator of (seed, epoch, step, positions[k])."""
    out = torch.empty(len(positions), dim, dtype=torch.float32)
    gen = torch.Generator()
    for k, pos in enumerate(positions):
        words = np.random.SeedSequence([int(seed), int(epoch), int(step), int(pos)]).generate_state(2, np.uint32)
        gen.manual_seed(int(words[0]) << 31 ^ int(words[1]))
        out[k] = torch.randn(dim, generator=gen)
    return out.to(device=device, dtype=dtype)
