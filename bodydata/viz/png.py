"""Atomic PNG output of matplotlib figures: the picture appears complete or not at all, and the figure is freed."""
from __future__ import annotations

import os
from pathlib import Path

from bodydata.fsutil import atomic_path

__all__ = ["save_png"]


def save_png(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` as PNG (temp file, then rename) and close it; returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return path
