"""Conversion quality: point-to-mesh distances both ways, landmark error, MED.

The closest-point geometry is :mod:`bodydata.mesh.closest`; this module turns it into the conversion metrics.
A target without faces (a point cloud, ``faces`` of shape (0, 3)) has no surface between its points: distances
to it are distances to its nearest point (:func:`point_to_mesh`), which exceed the distance to the sampled
surface by up to about half the point spacing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodydata.mesh import closest

__all__ = ["SurfaceDistances", "landmark_error", "med", "point_to_mesh", "surface_distances"]


def point_to_mesh(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Distance (q,) float64 of each point (q, 3) to the mesh (vertices (n, 3), faces (m, 3)); for a point cloud
    (m = 0) the distance to its nearest point."""
    if len(np.asarray(faces).reshape(-1, 3)) == 0:
        from scipy.spatial import cKDTree

        return cKDTree(np.asarray(vertices, np.float64)).query(np.asarray(points, np.float64), workers=1)[0]
    return closest.point_to_mesh(points, vertices, faces)


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


def surface_distances(a_vertices: np.ndarray, a_faces: np.ndarray, b_vertices: np.ndarray, b_faces: np.ndarray) -> SurfaceDistances:
    """Vertices of A to the surface of B and vertices of B to the surface of A (a faceless side: its points)."""
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
