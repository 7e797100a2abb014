"""Meshes in one template's connectivity re-expressed in another's, when both templates are the same body (anny's topologies): each target vertex at a fixed place on the source surface.

anny's topologies (``notoes``, 12,272 vertices, and its 1,229-vertex collapse ``notoes_collapse10pc``) are one body
at one rest pose: every vertex of the coarse template lies on the fine template's surface (0.01 mm mean, 2.7 mm at
most). So a face and barycentrics on the source template, found once, place each target vertex on any mesh in the
source connectivity: a conversion to ``anny`` becomes one to ``anny-lite`` without registering again. The place is
fixed on the surface, so the map is exact for any affine motion of the mesh and follows its deformation as the
source triangles do.
"""
from __future__ import annotations

import numpy as np

from bodydata.errors import BodydataError
from bodydata.mesh.carry import place
from bodydata.mesh.closest import closest_points

__all__ = ["ResampleError", "TemplateResampler"]


class ResampleError(BodydataError, ValueError):
    """Two templates that are not the same body, or a mesh that is not in the source connectivity."""


class TemplateResampler:
    """Locates the ``dst`` template's vertices on the ``src`` template's surface once; calling it maps meshes.

    src, dst : :class:`~bodydata.templates.template.Template`. max_mm : the farthest a ``dst`` vertex may lie from
    the ``src`` surface (the templates must be one body in one frame and pose).
    """

    def __init__(self, src, dst, max_mm: float = 5.0) -> None:
        dist, self.face, self.bary, _ = closest_points(dst.vertices, src.vertices, src.faces)
        far = float(dist.max()) * 1000.0
        if far > max_mm:
            raise ResampleError(f"template {dst.name!r} is not on {src.name!r}'s surface: a vertex lies {far:.1f} mm "
                                f"from it (at most {max_mm:g} mm): not one body in one frame and pose")
        self.src_faces = np.asarray(src.faces, np.int64)
        self.n_src, self.n_dst = int(src.n_vertices), int(dst.n_vertices)
        self.distance_mm = dist * 1000.0  # (n_dst,) how far each dst vertex is from the src surface at rest

    def __call__(self, vertices: np.ndarray) -> np.ndarray:
        """(n_src, 3) or (B, n_src, 3) float -> (n_dst, 3) or (B, n_dst, 3) float64 in the dst connectivity."""
        v = np.asarray(vertices, np.float64)
        if v.shape[-2:] != (self.n_src, 3) or v.ndim not in (2, 3):
            raise ResampleError(f"mesh has shape {v.shape}, expected (..., {self.n_src}, 3) in the source template")
        return place(self.face, self.bary, v, self.src_faces)
