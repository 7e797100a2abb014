"""The differentiable map w -> ACAP features -> per-vertex transforms T_i(w) = exp(r_i) S_i, and E_prior, in torch.

E_prior (paper Eq. 14) = sum_i sum_{j in N(i)} c_ij |(p_i - p_j) - T_i(w)(q_i - q_j)|^2, summed over every
directed edge of the template with the ACAP edge weights ``c_ij`` of the feature fit
(:func:`bodydata.features.deformation.edge_weights`, ``"acap"``); for a fixed ``w`` its minimiser over ``p``
is the ACAP reconstruction (:class:`bodydata.features.reconstruct.AcapReconstructor`, the paper's Eq. 6),
which :meth:`PriorDeformer.reconstruct` uses.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bodydata.device import pick_device
from bodydata.registration.prior import SparsePrior

if TYPE_CHECKING:
    import torch

__all__ = ["PriorDeformer"]


class PriorDeformer:
    """Torch side of a :class:`SparsePrior` on its template.

    template_vertices : (n, 3) float64 q; faces : (m, 3) int64; device : torch device (default CUDA if available).
    """

    def __init__(self, prior: SparsePrior, template_vertices: np.ndarray, faces: np.ndarray,
                 device: str | torch.device | None = None, weighting: str = "acap"):
        import torch

        from bodydata.features.deformation import edge_weights
        from bodydata.features.reconstruct import AcapReconstructor

        q = np.asarray(template_vertices, np.float64)
        if len(q) != prior.n_vertices:
            raise ValueError(f"prior has {prior.n_vertices} vertices, the template {len(q)}")
        self.device = pick_device(device)
        self.n_vertices = len(q)
        self.K = prior.K
        # C as dense blocks, one per part: rows = the part's support, columns = its components (C is
        # sparse by parts, and small dense products + one index_add beat torch's CPU sparse kernels here)
        c = prior.basis.tocsc()
        self._blocks = []
        for part in np.unique(prior.component_part):
            cols = np.flatnonzero(prior.component_part == part)
            sub = c[:, cols]
            rows = np.unique(sub.indices)
            self._blocks.append((torch.as_tensor(cols, device=self.device), torch.as_tensor(rows, device=self.device),
                                 torch.as_tensor(sub[rows].toarray(), dtype=torch.float64, device=self.device)))
        self._rows_all = torch.cat([rows for _, rows, _ in self._blocks])
        self.offset = torch.as_tensor(prior.offset, dtype=torch.float64, device=self.device)
        e, w = edge_weights(q, np.asarray(faces, np.int64), weighting)
        i = np.r_[e[:, 0], e[:, 1]]
        j = np.r_[e[:, 1], e[:, 0]]
        self.ei = torch.as_tensor(i, device=self.device)
        self.ej = torch.as_tensor(j, device=self.device)
        self.cw = torch.as_tensor(np.r_[w, w], dtype=torch.float64, device=self.device)
        self.dq = torch.as_tensor(q[i] - q[j], dtype=torch.float64, device=self.device)   # (E2, 3)
        self.template = torch.as_tensor(q, dtype=torch.float64, device=self.device)
        self.reconstructor = AcapReconstructor(q, faces, weighting=weighting, device=self.device)
        n = len(q)
        ww = np.r_[w, w]
        d = q[i] - q[j]
        msum = np.zeros((n, 3))
        np.add.at(msum, i, ww[:, None] * d)
        self._msum = torch.as_tensor(msum, dtype=torch.float64, device=self.device)
        self._cdq = self.cw[:, None] * self.dq                       # (E2, 3) c_ij (q_i - q_j)

    def rhs(self, t: torch.Tensor) -> torch.Tensor:
        """T (B, n, 3, 3) -> b (B, n, 3) = sum_j c_ij (T_i + T_j)/2 (q_i - q_j) (the reconstructor's right-hand side)."""
        import torch

        own = (t * self._msum[None, :, None, :]).sum(-1)
        per_edge = (t[:, self.ej] * self._cdq[None, :, None, :]).sum(-1)     # c_ij T_j (q_i - q_j)
        other = torch.zeros_like(own).index_add(1, self.ei, per_edge)
        return 0.5 * (own + other)

    def features(self, w: torch.Tensor) -> torch.Tensor:
        """w : (B, K) float64 tensor -> (B, n, 9) features ``offset + C w``."""
        import torch

        vals = torch.cat([w[:, cols] @ block.T for cols, _, block in self._blocks], 1)
        flat = self.offset.reshape(1, -1).expand(w.shape[0], -1).index_add(1, self._rows_all, vals)
        return flat.reshape(w.shape[0], self.n_vertices, 9)

    def transforms(self, w: torch.Tensor) -> torch.Tensor:
        """w : (B, K) -> T (B, n, 3, 3) = exp(r) S (elementwise products: batched 3x3 matmuls are slow on CPU)."""
        from bodydata.features.polar import rotation_exp_torch, vec6_to_sym_torch

        f = self.features(w)
        rot = rotation_exp_torch(f[..., :3])
        sym = vec6_to_sym_torch(f[..., 3:9])
        return (rot[..., :, :, None] * sym[..., None, :, :]).sum(-2)

    def reconstruct(self, w: torch.Tensor, anchor_position: torch.Tensor | None = None) -> torch.Tensor:
        """w : (B, K) -> p (B, n, 3): the minimiser of E_prior for T(w) (anchor vertex at its template place)."""
        return self.reconstructor.solve(self.rhs(self.transforms(w)), anchor_position)

    def prior_energy(self, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """p : (B, n, 3), T : (B, n, 3, 3) -> (B,) E_prior (squared template units, summed over directed edges)."""

        dp = p[:, self.ei] - p[:, self.ej]                          # (B, E2, 3)
        tq = (t[:, self.ei] * self.dq[None, :, None, :]).sum(-1)
        return (self.cw[None] * ((dp - tq) ** 2).sum(-1)).sum(-1)
