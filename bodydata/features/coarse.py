"""Coarse part-level deformation features g (paper Eq. 2-4): one affine fit per body part, 9 numbers each.

For part k with vertex set V_k: ``T_k = argmin sum_{i in V_k} |(p_i - mean p) - T (q_i - mean q)|^2``, polar
``T_k = R_k S_k``, principal log ``u theta``, then ``r_k = u (theta + 2 pi m)`` with the integer m whose
vector is closest to the mean of the part's consistent per-vertex logs (Eq. 4, closed form
``m = round((u . mean_r - theta) / 2 pi)``). ``g`` is ``(K, 9)`` per mesh, layout as ``f``
(``[r, s11 s12 s13 s22 s23 s33]``); with the paper's 16 parts, ``g.reshape(144)``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from bodydata.errors import TemplateError
from bodydata.features.polar import polar_decompose, rotation_log, sym_to_vec6

__all__ = ["CoarseFit", "coarse_features"]


class CoarseFit:
    """Per-template data of the part fits.

    vertices : (n, 3) float64 template; part_labels : (n,) int in 0..K-1 (every part non-empty and not
    degenerate: its centred vertices must span 3-D).
    """

    def __init__(self, vertices: np.ndarray, part_labels: np.ndarray, n_parts: int | None = None):
        q = np.asarray(vertices, np.float64)
        lab = np.asarray(part_labels).astype(np.int64)
        if lab.shape != (len(q),):
            raise TemplateError(f"part_labels have shape {lab.shape}, expected ({len(q)},)")
        if lab.min() < 0:
            raise TemplateError("part_labels must be >= 0")
        k = int(n_parts if n_parts is not None else lab.max() + 1)
        counts = np.bincount(lab, minlength=k)
        if np.any(counts == 0):
            raise TemplateError(f"part {int(np.flatnonzero(counts == 0)[0])} has no vertices")
        self.n_parts = k
        self.labels = lab
        self._avg = sp.csr_matrix((1.0 / counts[lab], (lab, np.arange(len(q)))), shape=(k, len(q)))
        self._sum = sp.csr_matrix((np.ones(len(q)), (lab, np.arange(len(q)))), shape=(k, len(q)))
        qc = q - np.asarray(self._avg @ q)[lab]
        self._qc = qc
        a = np.asarray(self._sum @ (qc[:, :, None] * qc[:, None, :]).reshape(len(q), 9)).reshape(k, 3, 3)
        if np.any(np.abs(np.linalg.det(a)) <= 1e-15 * np.einsum("kii->k", a) ** 3):
            raise TemplateError("a body part's vertices do not span 3-D; its affine fit is undefined")
        self._a_inv = np.linalg.inv(a)

    def gradients(self, vertices: np.ndarray) -> np.ndarray:
        """(B, n, 3) -> (B, K, 3, 3) per-part affine maps T_k (Eq. 2)."""
        p = np.asarray(vertices, np.float64)
        bsz, n = p.shape[:2]
        outer = (p[..., :, None] * self._qc[None, :, None, :]).reshape(bsz, n, 9)   # sum p qc^T = sum pc qc^T
        flat = np.moveaxis(outer, 0, 1).reshape(n, bsz * 9)
        b = np.asarray(self._sum @ flat).reshape(self.n_parts, bsz, 3, 3)
        return np.moveaxis(b, 1, 0) @ self._a_inv[None]

    def __call__(self, vertices: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Coarse features ``(B, K, 9)`` of meshes ``vertices (B, n, 3)`` given their consistent logs ``r (B, n, 3)``."""
        t = self.gradients(vertices)
        rot, sym = polar_decompose(t)
        aa = rotation_log(rot)
        bsz = t.shape[0]
        mean_r = np.moveaxis(np.asarray(self._avg @ np.moveaxis(np.asarray(r, np.float64), 0, 1).reshape(len(self.labels), -1))
                             .reshape(self.n_parts, bsz, 3), 1, 0)                          # (B, K, 3)
        u = aa.axis
        m = np.rint((np.einsum("bki,bki->bk", u, mean_r) - aa.theta) / (2 * np.pi))
        # a zero rotation has no axis: take the part's mean direction so the choice still follows the mean
        zero = aa.theta == 0
        rk = u * (aa.theta + 2 * np.pi * m)[..., None]
        if np.any(zero):
            nrm = np.linalg.norm(mean_r, axis=-1, keepdims=True)
            dirn = np.where(nrm > 0, mean_r / np.maximum(nrm, 1e-300), 0.0)
            mz = np.rint(np.einsum("bki,bki->bk", dirn, mean_r) / (2 * np.pi))
            rk = np.where(zero[..., None], dirn * (2 * np.pi * mz)[..., None], rk)
        g = np.empty((bsz, self.n_parts, 9))
        g[..., :3] = rk
        g[..., 3:] = sym_to_vec6(sym)
        return g


def coarse_features(template_vertices: np.ndarray, part_labels: np.ndarray, vertices: np.ndarray, r: np.ndarray) -> np.ndarray:
    """One call: coarse features (B, K, 9) of ``vertices (B, n, 3)`` with consistent logs ``r (B, n, 3)``."""
    return CoarseFit(template_vertices, part_labels)(vertices, r)
