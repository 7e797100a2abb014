"""The dataset's feature scaling: per-dimension min/max of ``f`` and ``g`` over the train split, saved as ``scaling.npz``.

The mapping itself (each dimension to [-0.95, 0.95], paper §3 after Tan et al.) is
:mod:`bodydata.features.scaling`; this module only fits it from streamed min/max and stores it with the
dataset. ``scaling.npz`` holds ``f_min``, ``f_max`` ``(n, 9)`` and ``g_min``, ``g_max`` ``(16, 9)`` float64.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bodydata.errors import BodydataError
from bodydata.fsutil import atomic_path

__all__ = ["DatasetScaling", "fit_scaling", "save_scaling", "load_scaling"]


@dataclass
class DatasetScaling:
    """Scalers of ``f`` (per vertex and component) and ``g`` (per part and component)."""

    f_min: np.ndarray
    f_max: np.ndarray
    g_min: np.ndarray
    g_max: np.ndarray

    def __post_init__(self) -> None:
        from bodydata.features.scaling import FeatureScaler

        self._f = FeatureScaler.from_minmax(self.f_min, self.f_max)
        self._g = FeatureScaler.from_minmax(self.g_min, self.g_max)

    def transform_f(self, f: np.ndarray) -> np.ndarray:
        """``f (..., n, 9)`` -> scaled, same shape and dtype."""
        return np.asarray(self._f.transform(f), dtype=np.asarray(f).dtype)

    def inverse_f(self, f: np.ndarray) -> np.ndarray:
        return np.asarray(self._f.inverse_transform(f), dtype=np.asarray(f).dtype)

    def transform_g(self, g: np.ndarray) -> np.ndarray:
        """``g (..., 16, 9)`` -> scaled, same shape and dtype."""
        return np.asarray(self._g.transform(g), dtype=np.asarray(g).dtype)

    def inverse_g(self, g: np.ndarray) -> np.ndarray:
        return np.asarray(self._g.inverse_transform(g), dtype=np.asarray(g).dtype)

    def summary(self) -> dict[str, Any]:
        """What the dataset card records."""
        return {
            "range": [-0.95, 0.95],
            "method": "per-dimension min/max (bodydata.features.scaling)",
            "file": "scaling.npz",
            "constant_dims_f": int(np.sum(self.f_max <= self.f_min)),
            "constant_dims_g": int(np.sum(self.g_max <= self.g_min)),
        }


def fit_scaling(stats: dict[str, np.ndarray]) -> DatasetScaling:
    """From the train min/max (``f_min``, ``f_max``, ``g_min``, ``g_max``). Raises when no train row was seen."""
    if not np.all(np.isfinite(stats["f_min"])) or not np.all(np.isfinite(stats["g_min"])):
        raise BodydataError("cannot fit the scaling: the train split is empty")
    return DatasetScaling(*(np.asarray(stats[k], np.float64) for k in ("f_min", "f_max", "g_min", "g_max")))


def save_scaling(path: str | os.PathLike, scaling: DatasetScaling) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, f_min=scaling.f_min, f_max=scaling.f_max, g_min=scaling.g_min, g_max=scaling.g_max)


def load_scaling(path: str | os.PathLike) -> DatasetScaling:
    path = Path(path)
    if not path.is_file():
        raise BodydataError(f"{path}: no scaling file (build the dataset with `bodydata build-dataset`)")
    with np.load(path) as z:
        return DatasetScaling(z["f_min"], z["f_max"], z["g_min"], z["g_max"])
