"""PNG of a neutral-pose construction: the chosen pose, the constructed neutral and the target, front and side views.

Every panel shares one scale, so heights and segment lengths compare directly. Written atomically.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from bodydata.viz.png import save_png


def render_before_after(
    path: str | os.PathLike,
    faces: np.ndarray,
    meshes: Sequence[np.ndarray],
    titles: Sequence[str],
    up: Sequence[float] = (0.0, 0.0, 1.0),
    front: Sequence[float] = (0.0, -1.0, 0.0),
    suptitle: str | None = None,
    dpi: int = 100,
) -> Path:
    """Write a 2-row PNG (front view above, the subject's left side below) of meshes sharing ``faces``.

    faces : (m, 3) int64.  meshes : sequence of (n, 3) float64 vertex arrays.  titles : one per mesh.
    up / front : the subject's up and facing directions in the meshes' coordinates.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    from bodydata.viz.contact_sheet import project_mesh

    up_v = np.asarray(up, dtype=np.float64)
    front_v = np.asarray(front, dtype=np.float64)
    left_v = np.cross(up_v, front_v)
    views = [("front", -front_v), ("left side", -left_v)]
    cols = len(meshes)
    projected = [[project_mesh(v, faces, view=view, up=up_v) for v in meshes] for _, view in views]
    half = 0.0
    centres = []
    for row in projected:
        crow = []
        for polygons, _ in row:
            pts = polygons.reshape(-1, 2)
            lo, hi = pts.min(axis=0), pts.max(axis=0)
            crow.append((lo + hi) / 2.0)
            half = max(half, float((hi - lo).max()) / 2.0)
        centres.append(crow)
    half *= 1.05
    base = np.array([0.78, 0.66, 0.56])
    fig, axes = plt.subplots(2, cols, figsize=(2.4 * cols, 2 * 3.0), squeeze=False)
    for r, (caption, _) in enumerate(views):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_axis_off()
            polygons, shade = projected[r][c]
            fc = np.clip(base[None, :] * (0.25 + 0.75 * shade[:, None]), 0.0, 1.0)
            ax.add_collection(PolyCollection(polygons, facecolors=fc, edgecolors="face", linewidths=0.1))
            cx, cy = centres[r][c]
            ax.set_xlim(cx - half / 1.25, cx + half / 1.25)
            ax.set_ylim(cy - half, cy + half)
            ax.set_aspect("equal")
            ax.set_title(f"{titles[c]} ({caption})" if c < len(titles) else caption, fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=8)
    fig.tight_layout()
    return save_png(fig, path, dpi=dpi)
