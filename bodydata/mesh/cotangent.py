"""Cotangent weights and the cotangent Laplacian of a triangle mesh.

Conventions: ``vertices : (n, 3) float``, ``faces : (m, 3) int``. The corner ``k`` of face ``f``
is vertex ``faces[f, k]``; its angle is opposite the edge ``(faces[f, k+1], faces[f, k+2])``.

Robustness (what happens on bad triangles):

* Obtuse angles give negative cotangents and, possibly, negative edge weights. They are kept:
  the Laplacian is the linear-FEM stiffness matrix, a sum of one positive semi-definite 3x3 block
  per triangle, so it stays symmetric PSD with zero row sums whatever the angles.
* A (near-)degenerate triangle, one with ``2 * area < eps * longest_edge**2`` (``eps = 1e-8``:
  an angle below ~1e-8 rad or within ~1e-8 rad of pi), has no meaningful cotangents; its three
  cotangents are set to 0, so it contributes nothing to the weights (its edges then get the
  weight from the other face alone). This keeps all weights finite and bounded by
  ``1 / eps`` in magnitude, and keeps L PSD because whole triangles are dropped, never single corners.
* Zero-length edges and faces repeating a vertex fall under the same rule (cotangents 0).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["cotangents", "cotangent_weights", "cotangent_laplacian", "DEGENERATE_EPS"]

#: Relative threshold on ``2 * area / longest_edge**2`` below which a triangle counts as degenerate.
DEGENERATE_EPS = 1e-8


def cotangents(vertices: np.ndarray, faces: np.ndarray, *, eps: float = DEGENERATE_EPS) -> np.ndarray:
    """Cotangent of the interior angle at each corner.

    vertices : (n, 3) float; faces : (m, 3) int.
    Returns (m, 3) float64, ``out[f, k]`` = cot of the angle at corner ``faces[f, k]``.
    Degenerate triangles (see module docstring) get 0 in all three corners.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    p = v[f]                                     # (m, 3, 3): corner, xyz
    # Edge vectors leaving corner k towards k+1 and k+2.
    a = np.roll(p, -1, axis=1) - p
    b = np.roll(p, -2, axis=1) - p
    dot = np.einsum("mki,mki->mk", a, b)
    # |a x b| is twice the triangle area, the same for all three corners.
    twice_area = np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
    longest_sq = np.max(np.einsum("mki,mki->mk", a, a), axis=1)
    ok = twice_area > eps * longest_sq
    out = np.zeros_like(dot)
    out[ok] = dot[ok] / twice_area[ok, None]
    return out


def cotangent_weights(
    vertices: np.ndarray, faces: np.ndarray, *, eps: float = DEGENERATE_EPS
) -> tuple[np.ndarray, np.ndarray]:
    """Cotangent edge weights ``w_ij = (cot a_ij + cot b_ij) / 2``.

    a_ij, b_ij are the angles opposite edge (i, j) in its two faces; a boundary edge has one face
    and gets ``cot a_ij / 2``. (An edge of a non-manifold mesh shared by more faces sums them all.)

    Returns ``edges (e, 2) int64`` (i < j, sorted lexicographically, identical to
    :func:`bodydata.mesh.topology.edges`) and ``w (e,) float64``.
    """
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    n = len(vertices)
    cot = cotangents(vertices, f, eps=eps)
    # The edge opposite corner k joins corners k+1 and k+2.
    i = np.roll(f, -1, axis=1).reshape(-1)
    j = np.roll(f, -2, axis=1).reshape(-1)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    key = lo * n + hi
    uniq, inv = np.unique(key, return_inverse=True)
    w = 0.5 * np.bincount(inv.reshape(-1), weights=cot.reshape(-1), minlength=len(uniq))
    e = np.stack([uniq // n, uniq % n], axis=1).astype(np.int64)
    return e, w.astype(np.float64)


def cotangent_laplacian(vertices: np.ndarray, faces: np.ndarray, *, eps: float = DEGENERATE_EPS) -> sp.csr_matrix:
    """Cotangent Laplacian, ``scipy.sparse.csr_matrix`` (n, n) float64.

    ``L[i, j] = -w_ij`` for each edge, ``L[i, i] = sum_j w_ij``: symmetric, rows sum to 0, positive
    semi-definite (``x @ L @ x`` = integral of |grad x|^2 over the surface, x piecewise linear).
    Not divided by vertex areas; use :func:`bodydata.mesh.areas.vertex_areas` for a mass matrix.
    """
    n = len(vertices)
    e, w = cotangent_weights(vertices, faces, eps=eps)
    diag = np.bincount(e[:, 0], weights=w, minlength=n) + np.bincount(e[:, 1], weights=w, minlength=n)
    rows = np.concatenate([e[:, 0], e[:, 1], np.arange(n)])
    cols = np.concatenate([e[:, 1], e[:, 0], np.arange(n)])
    data = np.concatenate([-w, -w, diag])
    lap = sp.csr_matrix((data, (rows, cols)), shape=(n, n))
    lap.sum_duplicates()
    lap.sort_indices()
    return lap
