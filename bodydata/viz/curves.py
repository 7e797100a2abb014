"""Training curves as a PNG: each loss term per epoch, train and test, on a log scale, with the schedule's phases."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from bodydata.viz.png import save_png

__all__ = ["training_curves_png"]


def training_curves_png(path: str | os.PathLike, epochs: Sequence[int], series: Mapping[str, Sequence[float]],
                        phase_starts: Sequence[int] = (), title: str = "") -> Path:
    """One panel per term. series : name -> values per epoch, names ``train_<term>`` / ``test_<term>`` (NaN = not
    measured that epoch). phase_starts : epochs where a schedule phase begins (dashed lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    terms = sorted({k.split("_", 1)[1] for k in series if "_" in k})
    cols = min(3, max(1, len(terms)))
    rows = -(-len(terms) // cols) if terms else 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    x = np.asarray(epochs)
    for ax, term in zip(axes.ravel(), terms):
        for split, style in (("train", "-"), ("test", "--")):
            y = np.asarray(series.get(f"{split}_{term}", []), dtype=float)
            ok = np.isfinite(y) & (y > 0)
            if ok.any():
                ax.plot(x[: len(y)][ok], y[ok], style, label=split)
        for s in phase_starts:
            ax.axvline(s, color="0.6", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(terms):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)
