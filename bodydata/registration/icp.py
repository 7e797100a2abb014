"""Closest-point correspondences on a target mesh (KD-tree on its vertices), gated by distance and normal angle,
and the point-to-plane / point-to-point ICP energies in torch.

Closest points are target *vertices*; the point-to-plane residual ``n_t . (x - v_t)`` with the target's vertex
normal lets a template vertex slide along the target's tangent plane, so the vertex discretisation of the
target costs little. Gating drops pairs farther than ``max_dist`` or whose normals differ by more than
``max_angle`` degrees (back sides, the other leg, ...).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from scipy.spatial import cKDTree

__all__ = ["Correspondences", "TargetMesh", "closest", "point_to_plane", "point_to_point"]


@dataclass
class Correspondences:
    """index : (n,) int64 target (or source) vertex per query point; valid : (n,) bool after gating;
    distance : (n,) float64 (target units)."""

    index: np.ndarray
    valid: np.ndarray
    distance: np.ndarray


class TargetMesh:
    """A target mesh with its vertex normals and a KD-tree. vertices : (m, 3) float64; faces : (k, 3) int64, or
    shape (0, 3) for a point cloud, whose normals are then estimated (PCA of 16 neighbours, oriented outward by
    propagation) unless ``normals`` : (m, 3) float64 unit normals are given."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray | None = None):
        from scipy.spatial import cKDTree

        self.vertices = np.asarray(vertices, np.float64)
        self.faces = np.asarray(faces, np.int64).reshape(-1, 3)
        if normals is not None:
            self.normals = np.asarray(normals, np.float64)
        elif len(self.faces) == 0:
            from bodydata.mesh.pointcloud import estimate_normals

            self.normals = estimate_normals(self.vertices)
        else:
            from bodydata.mesh.normals import vertex_normals

            self.normals = vertex_normals(self.vertices, self.faces)
        self.tree = cKDTree(self.vertices)


def closest(tree: cKDTree, tree_points: np.ndarray, tree_normals: np.ndarray, query: np.ndarray, query_normals: np.ndarray,
            max_dist: float, max_angle: float) -> Correspondences:
    """Nearest ``tree`` point of each ``query`` point (m, 3), gated by distance (same units) and normal angle (degrees)."""
    d, idx = tree.query(query, k=1, workers=1)
    idx = np.asarray(idx, np.int64)
    cosang = np.einsum("ij,ij->i", tree_normals[idx], query_normals)
    valid = (d <= max_dist) & (cosang >= np.cos(np.deg2rad(max_angle))) & np.isfinite(d)
    return Correspondences(idx, valid, d)


def point_to_plane(x: torch.Tensor, points: torch.Tensor, normals: torch.Tensor,
                   weight: torch.Tensor) -> torch.Tensor:
    """x, points, normals : (n, 3) tensors, weight : (n,) -> (n,) terms weight_i (n_i . (x_i - points_i))^2
    (per pair, so that a batch can sum them per body)."""
    return weight * (((x - points) * normals).sum(-1) ** 2)


def point_to_point(x: torch.Tensor, points: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x, points : (n, 3), weight : (n,) -> (n,) terms weight_i |x_i - points_i|^2."""
    return weight * ((x - points) ** 2).sum(-1)
