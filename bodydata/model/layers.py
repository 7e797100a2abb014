"""Building blocks of the paper's networks: stacks of FC+tanh units, the VAE heads, a fixed per-dimension affine layer."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["mlp", "VaeHead", "FixedAffine"]


def mlp(dims: Sequence[int], final_tanh: bool = True) -> nn.Sequential:
    """Units of a fully connected layer followed by tanh (the paper's appendix: every unit is FC+tanh).

    dims : (d_0, d_1, ..., d_k) -> k units mapping d_0 -> d_k. final_tanh=False leaves the last FC linear.
    """
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(int(a), int(b)))
        if final_tanh or k < len(dims) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class VaeHead(nn.Module):
    """Mean by a linear layer, standard deviation by a linear layer with 2·sigmoid (paper §5.1)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.mean = nn.Linear(d_in, d_out)
        self.std = nn.Linear(d_in, d_out)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h : (B, d_in) -> mean (B, d_out), std (B, d_out) in (0, 2)."""
        return self.mean(h), 2.0 * torch.sigmoid(self.std(h))


class FixedAffine(nn.Module):
    """y = x * scale + offset per dimension, with buffers (saved with the weights, never trained).

    The features' scaling to [-0.95, 0.95] (and its inverse) as a layer, so a network can work in raw feature space.
    scale, offset : (...) float, broadcast against the trailing dimensions of x.
    """

    def __init__(self, scale, offset):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).clone())
        self.register_buffer("offset", torch.as_tensor(offset, dtype=torch.float32).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.offset, x, self.scale)
