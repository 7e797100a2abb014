"""The learnable skinning layer W (paper Eq. 9): b = W g with W >= 0, rows summing to 1, non-zero only near each vertex.

A row of W may be non-zero only on the vertex's own part and the parts adjacent to it in the template's part graph.
A masked softmax over learnable logits keeps all three constraints exactly, whatever the optimiser does: the weights
outside the mask are exact zeros (not small numbers), so the layer is sparse by construction.
"""
from __future__ import annotations

import networkx as nx
import numpy as np
import torch
from torch import nn

__all__ = ["skinning_mask", "SkinningLayer"]


def skinning_mask(part_labels: np.ndarray, graph: nx.Graph, n_parts: int = 16) -> np.ndarray:
    """(n, n_parts) bool: vertex i may blend part k when k is its own part or adjacent to it in ``graph``.

    part_labels : (n,) int part of each vertex. graph : part adjacency (nodes 0..n_parts-1).
    """
    labels = np.asarray(part_labels, dtype=np.int64)
    allowed = np.eye(n_parts, dtype=bool)
    for a, b in graph.edges():
        allowed[a, b] = allowed[b, a] = True
    return allowed[labels]


class SkinningLayer(nn.Module):
    """b (B, n, 9) = W (n, P) @ g (B, P, 9), W = masked softmax of learnable logits.

    mask : (n, P) bool (:func:`skinning_mask`). own : (n,) int the vertex's own part, which starts with a higher
    logit (``own_logit``) so that, before training, a vertex follows mostly its own part.
    """

    def __init__(self, mask: np.ndarray, own: np.ndarray, own_logit: float = 2.0):
        super().__init__()
        mask_t = torch.as_tensor(np.asarray(mask, dtype=bool))
        if mask_t.dim() != 2 or not bool(mask_t.any(dim=1).all()):
            raise ValueError("the skinning mask must be (n, P) with at least one allowed part per vertex")
        init = torch.zeros(mask_t.shape, dtype=torch.float32)
        init[torch.arange(mask_t.shape[0]), torch.as_tensor(np.asarray(own, dtype=np.int64))] = float(own_logit)
        self.logits = nn.Parameter(init)
        self.register_buffer("mask", mask_t)

    def weights(self) -> torch.Tensor:
        """W : (n, P) float, rows on the probability simplex, exact zeros outside the mask."""
        return torch.softmax(self.logits.masked_fill(~self.mask, float("-inf")), dim=1)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        """g : (B, P, C) -> (B, n, C)."""
        return torch.matmul(self.weights(), g)
