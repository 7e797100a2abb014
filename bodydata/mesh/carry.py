"""Surface points carried between two meshes of one connectivity: located on the first (face + barycentrics), placed on the second.

Two meshes that share faces and vertex order (two poses of one registration, two conversions into one template)
define a map between their surfaces: a point on a triangle of the first goes to the same barycentric point of the
same triangle of the second. It is affine on every triangle, so it is exact for any affine motion of the mesh.
"""
from __future__ import annotations

import numpy as np

from bodydata.errors import MeshError
from bodydata.mesh.closest import closest_points

__all__ = ["carry", "place"]


def place(face: np.ndarray, bary: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(..., k, 3) float64 points at barycentrics ``bary`` (k, 3) of triangles ``face`` (k,) int of meshes
    (vertices (..., n, 3), one connectivity ``faces`` (m, 3) int)."""
    corners = np.asarray(vertices, np.float64)[..., np.asarray(faces)[np.asarray(face)], :]  # (..., k, 3, 3)
    return np.einsum("kj,...kjc->...kc", np.asarray(bary, np.float64), corners)


def carry(points: np.ndarray, src: np.ndarray, dst: np.ndarray, faces: np.ndarray, tree=None) -> np.ndarray:
    """(k, 3) float64: each of ``points`` (k, 3) taken to its closest point on mesh ``src`` (n, 3), then to the same
    face and barycentrics on ``dst`` (n, 3); both meshes have ``faces`` (m, 3) int. ``tree``: a cKDTree of ``src``."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape:
        raise MeshError(None, f"src {src.shape} and dst {dst.shape} are not one connectivity")
    _, face, bary, _ = closest_points(points, src, faces, tree=tree)
    return place(face, bary, dst, faces)
