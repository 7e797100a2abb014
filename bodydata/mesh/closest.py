"""Closest points on a triangle mesh: exact point-triangle closest points and point-to-mesh distances, vectorised.

The candidate triangles of a query point are those incident to its ``k`` nearest mesh vertices (KD-tree),
and the exact point-triangle closest point (Ericson's Voronoi regions) is taken over them. For meshes
without very long thin triangles this equals the global closest point.
"""
from __future__ import annotations

import numpy as np

__all__ = ["closest_on_triangles", "closest_points", "point_to_mesh"]


def closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentrics (k, 3) of the closest point to p (k, 3) on triangles (a, b, c) (each (k, 3)), vectorised."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp = p - b
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    cp = p - c
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    eps = 1e-300
    out = np.empty((len(p), 3))
    den = np.maximum(va + vb + vc, eps)
    v, w = vb / den, vc / den
    out[:] = np.stack([1 - v - w, v, w], 1)                       # interior
    # edge regions (later assignments win over earlier ones only where their condition holds)
    m = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)          # edge bc
    t = (d4 - d3) / np.maximum((d4 - d3) + (d5 - d6), eps)
    out[m] = np.stack([np.zeros(m.sum()), 1 - t[m], t[m]], 1)
    m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)                         # edge ac
    t = d2 / np.maximum(d2 - d6, eps)
    out[m] = np.stack([1 - t[m], np.zeros(m.sum()), t[m]], 1)
    m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)                         # edge ab
    t = d1 / np.maximum(d1 - d3, eps)
    out[m] = np.stack([1 - t[m], t[m], np.zeros(m.sum())], 1)
    m = (d6 >= 0) & (d5 <= d6)                                    # vertex c
    out[m] = [0, 0, 1]
    m = (d3 >= 0) & (d4 <= d3)                                    # vertex b
    out[m] = [0, 1, 0]
    m = (d1 <= 0) & (d2 <= 0)                                     # vertex a
    out[m] = [1, 0, 0]
    return out


def closest_points(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, k: int = 8, tree=None):
    """Closest points of (q, 3) query points on a mesh (vertices (n, 3), faces (m, 3)).

    Returns (distance (q,), face (q,) int64, barycentrics (q, 3), closest (q, 3)) float64."""
    from scipy.spatial import cKDTree

    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    q = np.asarray(points, np.float64)
    tree = tree or cKDTree(v)
    k = min(k, len(v))
    _, nn = tree.query(q, k=k)
    nn = nn.reshape(len(q), k)
    # vertex -> incident faces as CSR
    order = np.argsort(f.reshape(-1), kind="stable")
    vf_face = order // 3
    vf_ptr = np.r_[0, np.cumsum(np.bincount(f.reshape(-1), minlength=len(v)))]
    cnt = vf_ptr[nn + 1] - vf_ptr[nn]                             # (q, k)
    tot = cnt.sum(1)
    qi = np.repeat(np.arange(len(q)), tot)
    starts = np.repeat(vf_ptr[nn].reshape(-1), cnt.reshape(-1))
    within = np.arange(len(starts)) - np.repeat(np.cumsum(cnt.reshape(-1)) - cnt.reshape(-1), cnt.reshape(-1))
    cand = vf_face[starts + within]
    tri = f[cand]
    bary = closest_on_triangles(q[qi], v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]])
    pts = np.einsum("ij,ijk->ik", bary, v[tri])
    d2 = ((pts - q[qi]) ** 2).sum(1)
    # per query: the best candidate
    best = np.lexsort((d2, qi))
    first = np.r_[0, np.cumsum(tot)[:-1]]
    pick = best[first]
    return np.sqrt(d2[pick]), cand[pick], bary[pick], pts[pick]


def point_to_mesh(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(k,) distance of each point (k, 3) to the closest point on the triangles of the mesh (vertices (n, 3), faces (m, 3))."""
    return closest_points(points, vertices, faces)[0]
