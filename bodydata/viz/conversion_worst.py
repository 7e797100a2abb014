"""Picture of a conversion's worst meshes: front and side views, vertices coloured by their distance to the input."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from bodydata.registration.convert import WorstPanel

__all__ = ["draw_worst"]


def draw_worst(panels: Sequence[WorstPanel], faces: np.ndarray, up: np.ndarray, front: np.ndarray,
               path: str | os.PathLike, clip_mm: float = 10.0) -> Path:
    """Front and side views (along ``front`` and the subject's right, ``up`` (3,) upwards) of every panel
    (:class:`~bodydata.registration.convert.WorstPanel`: title, vertices
    (n, 3) in the frame of ``up`` and ``front``, distance_mm (n,)), coloured
    0 .. ``clip_mm``; only vertices facing the viewer are drawn. faces : (k, 3) int shared by every body."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bodydata.mesh.normals import vertex_normals
    from bodydata.viz.png import save_png

    up, front = np.asarray(up, float), np.asarray(front, float)
    left = np.cross(up, front)
    cols = max(len(panels), 1)
    fig, axes = plt.subplots(2, cols, figsize=(2.6 * cols, 9), squeeze=False)
    sc = None
    for k, panel in enumerate(panels):
        c = panel.vertices
        nrm = vertex_normals(c, faces)
        for row, view in enumerate((front, -left)):  # from the front, then from the subject's right
            side = np.cross(up, view)
            vis = nrm @ view > 0
            ax = axes[row, k]
            sc = ax.scatter(-(c[vis] @ side), c[vis] @ up, c=panel.distance_mm[vis], s=0.6, cmap="inferno", vmin=0,
                            vmax=clip_mm)
            ax.set_aspect("equal")
            ax.set_axis_off()
        axes[0, k].set_title(panel.title, fontsize=7)
    if not panels:
        for ax in axes.ravel():
            ax.set_axis_off()
    if sc is not None:
        fig.colorbar(sc, ax=axes.ravel().tolist(), shrink=0.5, label="distance to input (x1000 units)")
    return save_png(fig, path, dpi=110)
