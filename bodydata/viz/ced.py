"""Cumulative error distribution (CED) curves as a PNG (paper Figs. 5, 7): the fraction of vertices within each error."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from bodydata.viz.png import save_png

__all__ = ["ced_png"]


def ced_png(path: str | os.PathLike, thresholds_mm: np.ndarray, curves: Mapping[str, np.ndarray], title: str = "",
            xlabel: str = "per-vertex error (mm)") -> Path:
    """thresholds_mm : (T,) float. curves : label -> (T,) fractions in [0, 1] (e.g. :func:`~bodydata.evaluate.
    metrics.ced_curve`). One line per label; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    x = np.asarray(thresholds_mm, np.float64)
    for label, y in curves.items():
        ax.plot(x, 100.0 * np.asarray(y, np.float64), label=label)
    ax.set_xlim(float(x.min()), float(x.max()))
    ax.set_ylim(0, 100)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel("vertices within (%)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
    if curves:
        ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_png(fig, path)
