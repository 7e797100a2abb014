"""Per-vertex error maps of a reconstruction: the target and the fitted mesh, the fit coloured by its error (mm)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from bodydata.viz.before_after import VertexError, render_before_after

__all__ = ["half_turn", "error_map_png"]


def half_turn(vertices: np.ndarray, up: Sequence[float], centre: np.ndarray) -> np.ndarray:
    """(n, 3) vertices turned 180° about the ``up`` axis through ``centre`` (R = 2 u u^T - I): the back faces the camera."""
    u = np.asarray(up, np.float64)
    u = u / np.linalg.norm(u)
    rot = 2.0 * np.outer(u, u) - np.eye(3)
    return (np.asarray(vertices, np.float64) - centre) @ rot.T + centre


def error_map_png(path: str | os.PathLike, faces: np.ndarray, target: np.ndarray, fitted: np.ndarray,
                  errors_mm: np.ndarray, title: str = "", up: Sequence[float] = (0.0, 0.0, 1.0),
                  front: Sequence[float] = (0.0, -1.0, 0.0), vmax_mm: float | None = None,
                  back: bool = False) -> Path:
    """target, fitted : (n, 3) float64 metres in one frame; faces : (m, 3) int64; errors_mm : (n,) float.
    Front and left-side views of both, the fitted mesh coloured by ``errors_mm`` (colour bar in mm); with ``back``
    the back and right-side views instead."""
    meshes = [np.asarray(target, np.float64), np.asarray(fitted, np.float64)]
    if back:
        centre = meshes[0].mean(axis=0)
        meshes = [half_turn(v, up, centre) for v in meshes]
        title = f"turned 180° (back): {title}" if title else "turned 180° (back)"
    names = ["target turned", "fit turned"] if back else ["target", "fit"]
    return render_before_after(path, faces, meshes, names, up=up, front=front, suptitle=title,
                               error=VertexError(np.asarray(errors_mm, np.float64), "vertex error", 1, vmax_mm))
