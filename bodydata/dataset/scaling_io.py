"""The dataset's feature scaling: per-dimension min/max of ``f`` and ``g`` over the train split, saved as ``scaling.npz``.

The mapping itself (each dimension to [-0.95, 0.95], paper §3 after Tan et al.) is
:mod:`bodydata.features.scaling`; this module only fits it from streamed min/max and stores it with the
dataset. ``scaling.npz`` holds ``f_min``, ``f_max`` ``(n, 9)``, ``g_min``, ``g_max`` ``(16, 9)`` float64 and
``f_range``, ``g_range`` ``(2,)`` (``FeatureScaler.to_arrays``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bodydata.errors import BodydataError
from bodydata.fsutil import atomic_path

if TYPE_CHECKING:
    from bodydata.features.scaling import FeatureScaler

__all__ = ["DatasetScaling", "fit_scaling", "save_scaling", "load_scaling"]


@dataclass
class DatasetScaling:
    """Scalers of ``f`` (per vertex and component, ``(n, 9)``) and ``g`` (per part and component, ``(16, 9)``)."""

    f: "FeatureScaler"
    g: "FeatureScaler"

    def transform_f(self, f: np.ndarray) -> np.ndarray:
        """``f (..., n, 9)`` -> scaled, same shape and dtype."""
        return np.asarray(self.f.transform(f), dtype=np.asarray(f).dtype)

    def inverse_f(self, f: np.ndarray) -> np.ndarray:
        return np.asarray(self.f.inverse_transform(f), dtype=np.asarray(f).dtype)

    def transform_g(self, g: np.ndarray) -> np.ndarray:
        """``g (..., 16, 9)`` -> scaled, same shape and dtype."""
        return np.asarray(self.g.transform(g), dtype=np.asarray(g).dtype)

    def inverse_g(self, g: np.ndarray) -> np.ndarray:
        return np.asarray(self.g.inverse_transform(g), dtype=np.asarray(g).dtype)

    def summary(self) -> dict[str, Any]:
        """What the dataset card records."""
        return {
            "range": [self.f.lo, self.f.hi],
            "method": "per-dimension min/max (bodydata.features.scaling.FeatureScaler)",
            "file": "scaling.npz",
            "constant_dims_f": int(np.sum(self.f.data_max <= self.f.data_min)),
            "constant_dims_g": int(np.sum(self.g.data_max <= self.g.data_min)),
        }


def fit_scaling(stats: dict[str, np.ndarray]) -> DatasetScaling:
    """From the train min/max (``f_min``, ``f_max``, ``g_min``, ``g_max``). Raises when no train row was seen."""
    from bodydata.features.scaling import FeatureScaler

    if not np.all(np.isfinite(stats["f_min"])) or not np.all(np.isfinite(stats["g_min"])):
        raise BodydataError("cannot fit the scaling: the train split is empty")
    return DatasetScaling(FeatureScaler.from_minmax(stats["f_min"], stats["f_max"]),
                          FeatureScaler.from_minmax(stats["g_min"], stats["g_max"]))


def save_scaling(path: str | os.PathLike, scaling: DatasetScaling) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **scaling.f.to_arrays("f"), **scaling.g.to_arrays("g"))


def load_scaling(path: str | os.PathLike) -> DatasetScaling:
    from bodydata.features.scaling import FeatureScaler

    path = Path(path)
    if not path.is_file():
        raise BodydataError(f"{path}: no scaling file (build the dataset with `bodydata build-dataset`)")
    with np.load(path) as z:
        return DatasetScaling(FeatureScaler.from_arrays(z, "f"), FeatureScaler.from_arrays(z, "g"))
