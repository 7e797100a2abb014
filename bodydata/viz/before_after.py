"""PNG of a neutral-pose construction: the chosen pose, the constructed neutral and the target, front and side views.

Every panel shares one scale, so heights and segment lengths compare directly. One panel may carry a
per-vertex error as colours with a colour bar (:class:`VertexError`): the error against the true neutral
when the source knows it, else the distance to the target, labelled as such. Written atomically.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from bodydata.viz.png import save_png

__all__ = ["VertexError", "face_values", "render_before_after"]

ERROR_CMAP = "viridis"


@dataclass(frozen=True)
class VertexError:
    """A per-vertex error drawn as colours on panel ``panel`` of the figure.

    values_mm : (n,) float64 millimetres, one per vertex of that panel's mesh.  label : what was measured
    (shown on the colour bar and in the panel title).  vmax_mm : top of the colour scale (default: the
    99th percentile of the values, so a few outliers do not wash out the rest).
    """

    values_mm: np.ndarray
    label: str
    panel: int = 1
    vmax_mm: float | None = None


def face_values(vertex_values: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(m,) float64 mean of each face's three corner values; vertex_values (n,) float, faces (m, 3) int."""
    v = np.asarray(vertex_values, dtype=np.float64)
    return v[np.asarray(faces, dtype=np.int64)].mean(axis=1)


def render_before_after(
    path: str | os.PathLike,
    faces: np.ndarray,
    meshes: Sequence[np.ndarray],
    titles: Sequence[str],
    up: Sequence[float] = (0.0, 0.0, 1.0),
    front: Sequence[float] = (0.0, -1.0, 0.0),
    suptitle: str | None = None,
    dpi: int = 100,
    error: VertexError | None = None,
) -> Path:
    """Write a 2-row PNG (front view above, the subject's left side below) of meshes sharing ``faces``.

    faces : (m, 3) int64.  meshes : sequence of (n, 3) float64 vertex arrays.  titles : one per mesh.
    up / front : the subject's up and facing directions in the meshes' coordinates.
    error : colours one panel by a per-vertex error and adds a colour bar (millimetres).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import Normalize

    from bodydata.viz.contact_sheet import project_faces

    up_v = np.asarray(up, dtype=np.float64)
    front_v = np.asarray(front, dtype=np.float64)
    left_v = np.cross(up_v, front_v)
    views = [("front", -front_v), ("left side", -left_v)]
    cols = len(meshes)
    if error is not None and not 0 <= error.panel < cols:
        raise ValueError(f"error panel {error.panel} is not one of the {cols} panels")
    projected = [[project_faces(v, faces, view=view, up=up_v) for v in meshes] for _, view in views]
    half = 0.0
    centres = []
    for row in projected:
        crow = []
        for polygons, _, _ in row:
            pts = polygons.reshape(-1, 2)
            lo, hi = pts.min(axis=0), pts.max(axis=0)
            crow.append((lo + hi) / 2.0)
            half = max(half, float((hi - lo).max()) / 2.0)
        centres.append(crow)
    half *= 1.05
    base = np.array([0.78, 0.66, 0.56])
    norm = cmap = None
    if error is not None:
        values = np.asarray(error.values_mm, dtype=np.float64)
        vmax = error.vmax_mm if error.vmax_mm is not None else float(np.percentile(values, 99))
        norm, cmap = Normalize(0.0, max(vmax, 1e-9)), plt.get_cmap(ERROR_CMAP)
        per_face = face_values(values, faces)
    ratios = [1.0] * cols + ([0.08] if error is not None else [])
    fig = plt.figure(figsize=(2.4 * cols + (0.9 if error is not None else 0.0), 2 * 3.0))
    grid = fig.add_gridspec(2, len(ratios), width_ratios=ratios)
    for r, (caption, _) in enumerate(views):
        for c in range(cols):
            ax = fig.add_subplot(grid[r, c])
            ax.set_axis_off()
            polygons, shade, face_ids = projected[r][c]
            if error is not None and c == error.panel:
                # Light shading keeps the body's shape readable without changing the hue that encodes the error.
                fc = cmap(norm(per_face[face_ids]))[:, :3] * (0.55 + 0.45 * shade[:, None])
            else:
                fc = base[None, :] * (0.25 + 0.75 * shade[:, None])
            ax.add_collection(PolyCollection(polygons, facecolors=np.clip(fc, 0.0, 1.0), edgecolors="face", linewidths=0.1))
            cx, cy = centres[r][c]
            ax.set_xlim(cx - half / 1.25, cx + half / 1.25)
            ax.set_ylim(cy - half, cy + half)
            ax.set_aspect("equal")
            title = titles[c] if c < len(titles) else ""
            if error is not None and c == error.panel:
                title = f"{title}, {error.label}"
            ax.set_title(f"{title} ({caption})" if title else caption, fontsize=7)
    if error is not None:
        cax = fig.add_subplot(grid[:, -1])
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, extend="max")
        bar.set_label(f"{error.label} (mm)", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    if suptitle:
        fig.suptitle(suptitle, fontsize=8)
    fig.tight_layout()
    return save_png(fig, path, dpi=dpi)
