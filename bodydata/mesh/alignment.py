"""Batched rigid and similarity alignment of corresponding point sets (Kabsch / Umeyama), reflection-safe.

All functions accept a single point set ``(n, 3)`` or a batch ``(B, n, 3)`` (float64) and return
results with the same leading shape. The alignment maps ``source`` onto ``target``:
``aligned = scale * source @ R.T + t``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodydata.errors import BodydataError


class AlignmentError(BodydataError, ValueError):
    """Point sets that cannot be aligned (shape mismatch, too few points, non-finite values)."""


@dataclass
class Alignment:
    """A rigid (``scale == 1``) or similarity transform and the residual it leaves.

    rotation : (..., 3, 3) float64 proper rotations (det +1).  translation : (..., 3) float64.
    scale : (...,) float64.  rms : (...,) float64 root-mean-square distance (same units as the input)
    between the aligned source and the target, weighted by the point weights when given.
    """

    rotation: np.ndarray
    translation: np.ndarray
    scale: np.ndarray
    rms: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform ``points`` (..., n, 3) with the batch shape of this alignment."""
        pts = np.asarray(points, dtype=np.float64)
        return self.scale[..., None, None] * pts @ np.swapaxes(self.rotation, -1, -2) + self.translation[..., None, :]


def _check(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = np.asarray(source, dtype=np.float64)
    tgt = np.asarray(target, dtype=np.float64)
    if src.shape[-1:] != (3,) or src.ndim not in (2, 3):
        raise AlignmentError(f"source must be (n, 3) or (B, n, 3), got {src.shape}")
    try:
        tgt = np.broadcast_to(tgt, src.shape)
    except ValueError:
        raise AlignmentError(f"target shape {np.shape(target)} does not match source {src.shape}") from None
    n = src.shape[-2]
    if n < 3:
        raise AlignmentError(f"need at least 3 corresponding points, got {n}")
    if not (np.isfinite(src).all() and np.isfinite(tgt).all()):
        raise AlignmentError("points contain NaN or infinity")
    if weights is None:
        w = np.full(n, 1.0 / n)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
            raise AlignmentError(f"weights must be ({n},) non-negative with a positive sum")
        w = w / w.sum()
    return src, tgt, w


def kabsch_rotation(covariance: np.ndarray) -> np.ndarray:
    """Proper rotation(s) R maximising ``trace(R^T C)`` for covariance(s) C (..., 3, 3).

    C = sum_k w_k t_k s_k^T (target x source). Reflection-safe: the sign of the last singular
    direction is flipped when ``det(U V^T) < 0``, so the result always has det +1.
    """
    u, _, vt = np.linalg.svd(covariance)
    d = np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    return u @ vt


def align(
    source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None, scale: bool = False
) -> Alignment:
    """Best rigid (Kabsch) or, with ``scale``, similarity (Umeyama) transform from source onto target.

    source, target : (n, 3) or (B, n, 3) float64 corresponding points (target may broadcast).
    weights : (n,) optional non-negative point weights.
    """
    src, tgt, w = _check(source, target, weights)
    mu_s = np.einsum("n,...nd->...d", w, src)
    mu_t = np.einsum("n,...nd->...d", w, tgt)
    xs = src - mu_s[..., None, :]
    xt = tgt - mu_t[..., None, :]
    cov = np.einsum("n,...ni,...nj->...ij", w, xt, xs)
    u, sig, vt = np.linalg.svd(cov)
    d = np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    rot = u @ vt
    if scale:
        var_s = np.einsum("n,...nd,...nd->...", w, xs, xs)
        s = (sig[..., 0] + sig[..., 1] + d * sig[..., 2]) / np.maximum(var_s, 1e-300)
    else:
        s = np.ones(src.shape[:-2])
    t = mu_t - s[..., None] * np.einsum("...ij,...j->...i", rot, mu_s)
    aligned = s[..., None, None] * src @ np.swapaxes(rot, -1, -2) + t[..., None, :]
    rms = np.sqrt(np.einsum("n,...n->...", w, np.sum((aligned - tgt) ** 2, axis=-1)))
    return Alignment(rot, t, np.asarray(s, dtype=np.float64), rms)


def rigid_residual(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """RMS distance (...,) left after the best rigid alignment of source (..., n, 3) onto target."""
    return align(source, target, weights).rms


def vertex_distances(a: np.ndarray, b: np.ndarray, rigid: bool = True) -> np.ndarray:
    """(n,) float64 Euclidean distance of each point of a (n, 3) to its counterpart in b (n, 3), after rigid
    alignment of a onto b if ``rigid`` (same units as the input)."""
    a = np.asarray(a, dtype=np.float64)
    if rigid:
        a = align(a, b).apply(a)
    return np.linalg.norm(a - np.asarray(b, dtype=np.float64), axis=-1)


def mean_euclidean_distance(a: np.ndarray, b: np.ndarray, rigid: bool = True) -> float:
    """Mean per-vertex Euclidean distance between (n, 3) point sets, after rigid alignment of a onto b if ``rigid``."""
    return float(vertex_distances(a, b, rigid).mean())
