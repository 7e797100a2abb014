"""Checks on mesh arrays that turn bad input into one-line ``MeshError``s naming the file."""
from __future__ import annotations

import os

import numpy as np

from bodydata.errors import MeshError


def check_mesh_arrays(
    vertices: np.ndarray,
    faces: np.ndarray,
    path: str | os.PathLike | None = None,
    expected_vertices: int | None = None,
    expected_faces: np.ndarray | None = None,
    check_degenerate: bool = True,
) -> None:
    """Validate ``vertices : (n, 3) float`` and ``faces : (m, 3) int``.

    Checks: shapes, at least one vertex, finite coordinates (no NaN/inf), face indices in range,
    no face repeating a vertex (degenerate), and optionally the vertex count and the exact face
    list of a topology. Raises ``MeshError(path, reason)``.
    """
    vertices = np.asarray(vertices)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise MeshError(path, f"vertices have shape {vertices.shape}, expected (n, 3)")
    if len(vertices) == 0:
        raise MeshError(path, "mesh has no vertices")
    if not np.issubdtype(vertices.dtype, np.number):
        raise MeshError(path, f"vertices have non-numeric dtype {vertices.dtype}")
    finite = np.isfinite(vertices)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        kind = "NaN" if np.isnan(vertices[bad_rows[0]]).any() else "infinite"
        raise MeshError(path, f"{len(bad_rows)} vertices have non-finite coordinates (first: vertex {bad_rows[0]} is {kind})")
    if faces.size and (faces.ndim != 2 or faces.shape[1] != 3):
        raise MeshError(path, f"faces have shape {faces.shape}, expected (m, 3) triangles")
    if expected_vertices is not None and len(vertices) != expected_vertices:
        raise MeshError(path, f"has {len(vertices)} vertices, the topology expects {expected_vertices}")
    if faces.size:
        if not np.issubdtype(faces.dtype, np.integer):
            raise MeshError(path, f"face indices have non-integer dtype {faces.dtype}")
        lo, hi = int(faces.min()), int(faces.max())
        if lo < 0 or hi >= len(vertices):
            bad = int(np.flatnonzero(((faces < 0) | (faces >= len(vertices))).any(axis=1))[0])
            raise MeshError(path, f"face {bad} indexes vertex {faces[bad].tolist()} out of range [0, {len(vertices)})")
        if check_degenerate:
            rep = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
            if rep.any():
                bad = np.flatnonzero(rep)
                raise MeshError(path, f"{len(bad)} degenerate faces repeat a vertex (first: face {bad[0]} = {faces[bad[0]].tolist()})")
    if expected_faces is not None:
        expected_faces = np.asarray(expected_faces)
        if faces.shape != expected_faces.shape or not np.array_equal(faces, expected_faces):
            raise MeshError(
                path,
                f"connectivity differs from the template ({len(faces)} faces vs {len(expected_faces)}"
                + ("" if faces.shape != expected_faces.shape else f", first differing face {int(np.flatnonzero((faces != expected_faces).any(axis=1))[0])}")
                + ")",
            )


def check_zero_area_faces(vertices: np.ndarray, faces: np.ndarray, path=None, eps: float = 0.0) -> None:
    """Raise if any triangle has area <= eps (collinear corners)."""
    e1 = vertices[faces[:, 1]] - vertices[faces[:, 0]]
    e2 = vertices[faces[:, 2]] - vertices[faces[:, 0]]
    area = 0.5 * np.linalg.norm(np.cross(e1, e2), axis=1)
    bad = np.flatnonzero(area <= eps)
    if len(bad):
        raise MeshError(path, f"{len(bad)} faces have zero area (first: face {bad[0]})")
