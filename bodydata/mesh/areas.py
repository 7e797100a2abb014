"""Triangle areas, per-vertex (barycentric) areas and total surface area."""
from __future__ import annotations

import numpy as np

__all__ = ["face_areas", "vertex_areas", "surface_area"]


def _face_cross(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(m, 3) float64 cross product (v1 - v0) x (v2 - v0); its norm is twice the face area."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    p0, p1, p2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return np.cross(p1 - p0, p2 - p0)


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area of each triangle. vertices : (n, 3) float; faces : (m, 3) int. Returns (m,) float64 (units^2)."""
    return 0.5 * np.linalg.norm(_face_cross(vertices, faces), axis=1)


def vertex_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Barycentric vertex areas: one third of the area of each incident face.

    Returns (n,) float64 with n = len(vertices); isolated vertices get 0. Sums to the surface area
    (the lumped mass matrix of linear FEM).
    """
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    third = np.repeat(face_areas(vertices, f) / 3.0, 3)
    return np.bincount(f.reshape(-1), weights=third, minlength=len(vertices)).astype(np.float64)


def surface_area(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Total area of the triangles, float (units^2)."""
    return float(face_areas(vertices, faces).sum())
