"""Conversion quality: point-to-mesh distances both ways (closest points on triangles), landmark error, MED.

Closest points on a mesh: the candidate triangles of a query point are those incident to its ``k`` nearest
mesh vertices (KD-tree), and the exact point-triangle closest point is taken over them (vectorised
Ericson regions). For meshes without very long thin triangles this equals the global closest point.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SurfaceDistances", "closest_on_triangles", "closest_points", "landmark_error", "med", "point_to_mesh", "surface_distances"]


@dataclass
class SurfaceDistances:
    """Distances in the meshes' units. ``a_to_b``: from each vertex of A to the surface of B; ``b_to_a`` likewise."""

    a_to_b: np.ndarray
    b_to_a: np.ndarray

    def summary(self, scale: float = 1000.0) -> dict:
        """Mean and 95th percentile both ways, times ``scale`` (1000: metres -> millimetres)."""
        return {
            "p2m_mean_mm": scale * float(self.a_to_b.mean()), "p2m_p95_mm": scale * float(np.percentile(self.a_to_b, 95)),
            "m2p_mean_mm": scale * float(self.b_to_a.mean()), "m2p_p95_mm": scale * float(np.percentile(self.b_to_a, 95)),
        }


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


def surface_distances(a_vertices: np.ndarray, a_faces: np.ndarray, b_vertices: np.ndarray, b_faces: np.ndarray) -> SurfaceDistances:
    """Vertices of A to the surface of B and vertices of B to the surface of A."""
    return SurfaceDistances(point_to_mesh(a_vertices, b_vertices, b_faces), point_to_mesh(b_vertices, a_vertices, a_faces))


def landmark_error(vertices: np.ndarray, landmarks: dict[str, int], target_vertices: np.ndarray,
                   target_landmarks: dict[str, int]) -> float:
    """Mean distance between same-named landmarks of two meshes (their units); NaN when none are shared."""
    names = [k for k in landmarks if k in target_landmarks]
    if not names:
        return float("nan")
    a = np.asarray(vertices)[[landmarks[k] for k in names]]
    b = np.asarray(target_vertices)[[target_landmarks[k] for k in names]]
    return float(np.linalg.norm(a - b, axis=1).mean())


def med(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Euclidean distance between corresponding vertices of (n, 3) arrays (their units)."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1).mean())
