"""Per-vertex error maps of a reconstruction: the target and the fitted mesh, the fit coloured by its error (mm)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from bodydata.viz.before_after import VertexError, render_before_after

__all__ = ["error_map_png"]


def error_map_png(path: str | os.PathLike, faces: np.ndarray, target: np.ndarray, fitted: np.ndarray,
                  errors_mm: np.ndarray, title: str = "", up: Sequence[float] = (0.0, 0.0, 1.0),
                  front: Sequence[float] = (0.0, -1.0, 0.0), vmax_mm: float | None = None) -> Path:
    """target, fitted : (n, 3) float64 metres in one frame; faces : (m, 3) int64; errors_mm : (n,) float.
    Front and side views of both, the fitted mesh coloured by ``errors_mm`` (colour bar in mm)."""
    return render_before_after(path, faces, [target, fitted], ["target", "fit"], up=up, front=front, suptitle=title,
                               error=VertexError(np.asarray(errors_mm, np.float64), "vertex error", 1, vmax_mm))
