"""Contact sheets: a grid PNG of body meshes seen from the front (flat-shaded orthographic, matplotlib Agg).

The renderer is deliberately simple (painter's algorithm over triangles drawn as a 2D
``PolyCollection``) so it needs nothing beyond matplotlib and stays fast enough for ~24 bodies of
~12k vertices (about a second each). Bodies are expected z-up; the camera looks along ``view``
(default +y, i.e. at a subject facing -y, which is anny's convention), so the subject's left
appears on the right of the picture as in a photograph.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from bodydata.mesh.normals import face_normals
from bodydata.viz.png import save_png


def _camera_axes(view: Sequence[float], up: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal (right, up, forward) of a camera looking along ``view``."""
    forward = np.asarray(view, dtype=np.float64)
    forward = forward / np.linalg.norm(forward)
    upv = np.asarray(up, dtype=np.float64)
    right = np.cross(forward, upv)
    right = right / np.linalg.norm(right)
    true_up = np.cross(right, forward)
    return right, true_up, forward


def project_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    view: Sequence[float] = (0.0, 1.0, 0.0),
    up: Sequence[float] = (0.0, 0.0, 1.0),
    light: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Orthographic projection of the front-facing triangles, sorted far to near.

    vertices : (n, 3) float64; faces : (m, 3) int64.
    Returns ``polygons`` (k, 3, 2) float64 image-plane corners (x right, y up, metres) and
    ``shade`` (k,) float64 in [0, 1] (Lambert term with a headlight slightly above the camera).
    """
    polygons, shade, _ = project_faces(vertices, faces, view, up, light)
    return polygons, shade


def project_faces(vertices: np.ndarray, faces: np.ndarray, view: Sequence[float], up: Sequence[float],
                  light: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`project_mesh` plus ``face_ids`` (k,) int64: the row of ``faces`` each drawn polygon comes from,
    so per-face values (colours, errors) can follow the polygons."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    right, true_up, forward = _camera_axes(view, up)
    tri = vertices[faces]  # (m, 3, 3)
    normals = face_normals(vertices, faces)
    facing = normals @ forward < 0.0  # counter-clockwise outward normals point at the camera
    face_ids = np.flatnonzero(facing)
    tri = tri[facing]
    normals = normals[facing]
    if light is None:
        light_dir = -forward + 0.5 * true_up + 0.3 * right
    else:
        light_dir = np.asarray(light, dtype=np.float64)
    light_dir = light_dir / np.linalg.norm(light_dir)
    shade = np.clip(normals @ light_dir, 0.0, 1.0)
    depth = (tri @ forward).mean(axis=1)
    order = np.argsort(-depth, kind="stable")  # far first
    tri = tri[order]
    polygons = np.stack([tri @ right, tri @ true_up], axis=-1)
    return polygons, shade[order], face_ids[order]


def render_contact_sheet(
    path: str | os.PathLike,
    meshes: Sequence[tuple[np.ndarray, np.ndarray]],
    titles: Sequence[str] | None = None,
    columns: int | None = None,
    view: Sequence[float] = (0.0, 1.0, 0.0),
    up: Sequence[float] = (0.0, 0.0, 1.0),
    panel_inches: float = 2.2,
    dpi: int = 110,
    color: Sequence[float] = (0.78, 0.66, 0.56),
    suptitle: str | None = None,
) -> Path:
    """Write a grid PNG of bodies seen from the front, all at the same scale.

    meshes : sequence of (vertices (n, 3) float64, faces (m, 3) int64), z-up, metres.
    titles : one short caption per panel (or None).
    The scale is shared by all panels (the largest body extent), so heights compare directly.
    Written atomically; returns the path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    path = Path(path)
    count = len(meshes)
    if count == 0:
        raise ValueError("render_contact_sheet needs at least one mesh")
    if columns is None:
        columns = int(math.ceil(math.sqrt(count * 1.6)))
    columns = max(1, min(columns, count))
    rows = int(math.ceil(count / columns))
    projected = [project_mesh(v, f, view=view, up=up) for v, f in meshes]
    centres, half = [], 0.0
    for polygons, _ in projected:
        pts = polygons.reshape(-1, 2)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        centres.append((lo + hi) / 2.0)
        half = max(half, float((hi - lo).max()) / 2.0)
    half *= 1.04
    base = np.asarray(color, dtype=np.float64)
    fig, axes = plt.subplots(
        rows, columns, figsize=(panel_inches * columns, panel_inches * 1.25 * rows), squeeze=False
    )
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k >= count:
            continue
        polygons, shade = projected[k]
        facecolors = np.clip(base[None, :] * (0.25 + 0.75 * shade[:, None]), 0.0, 1.0)
        collection = PolyCollection(polygons, facecolors=facecolors, edgecolors="face", linewidths=0.1)
        ax.add_collection(collection)
        cx, cy = centres[k]
        ax.set_xlim(cx - half / 1.25, cx + half / 1.25)
        ax.set_ylim(cy - half, cy + half)
        ax.set_aspect("equal")
        if titles is not None and k < len(titles) and titles[k]:
            ax.set_title(titles[k], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return save_png(fig, path, dpi=dpi)
