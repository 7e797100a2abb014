"""Per-dimension feature scaling to [-0.95, 0.95] (paper §3, after Tan et al.): fit on a set, transform, invert.

``x_scaled = lo + (x - min) * (hi - lo) / (max - min)`` per dimension, with ``[lo, hi] = [-0.95, 0.95]``.
A constant dimension (max == min) maps to the middle of the range and back to its constant. The scaler is
stored next to the features (:meth:`FeatureScaler.to_arrays` / :meth:`from_arrays`, npz keys
``<prefix>_min`` and ``<prefix>_max``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FeatureScaler"]


@dataclass
class FeatureScaler:
    """Per-dimension min/max of the training features; ``shape`` is one sample's feature shape (e.g. (n, 9))."""

    data_min: np.ndarray
    data_max: np.ndarray
    lo: float = -0.95
    hi: float = 0.95

    @classmethod
    def fit(cls, features: np.ndarray, lo: float = -0.95, hi: float = 0.95) -> "FeatureScaler":
        """features : (N, ...) float -- the per-dimension range over the first axis."""
        x = np.asarray(features, np.float64)
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"fit needs a batch (N, ...) with N >= 1, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("features contain non-finite values")
        return cls(x.min(axis=0), x.max(axis=0), float(lo), float(hi))

    @classmethod
    def from_minmax(cls, data_min: np.ndarray, data_max: np.ndarray, lo: float = -0.95, hi: float = 0.95) -> "FeatureScaler":
        """A scaler from per-dimension minima and maxima already known (e.g. accumulated over a stream)."""
        mn = np.asarray(data_min, np.float64)
        mx = np.asarray(data_max, np.float64)
        if mn.shape != mx.shape or np.any(mx < mn):
            raise ValueError("data_min and data_max must have one shape and data_min <= data_max")
        return cls(mn, mx, float(lo), float(hi))

    @property
    def _span(self) -> np.ndarray:
        span = self.data_max - self.data_min
        return np.where(span > 0, span, 1.0)

    def transform(self, features):
        """(N, ...) or (...) -> scaled, same shape (numpy array or torch tensor)."""
        mid = 0.5 * (self.lo + self.hi)
        const = self.data_max == self.data_min
        scale = (self.hi - self.lo) / self._span
        offset = np.where(const, mid, self.lo - self.data_min * scale)
        scale = np.where(const, 0.0, scale)
        return self._affine(features, scale, offset)

    def inverse_transform(self, scaled):
        """Inverse of :meth:`transform`; constant dimensions return their constant."""
        const = self.data_max == self.data_min
        scale = self._span / (self.hi - self.lo)
        offset = np.where(const, self.data_min, self.data_min - self.lo * scale)
        scale = np.where(const, 0.0, scale)
        return self._affine(scaled, scale, offset)

    def affine(self, inverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(scale, offset), float64 arrays of the features' shape, with ``transform(x) = x * scale + offset``
        (or the same for ``inverse_transform``): the map as one fused multiply-add, e.g. for a batch on a GPU."""
        shape = np.shape(self.data_min)
        fn = self.inverse_transform if inverse else self.transform
        offset = np.asarray(fn(np.zeros(shape)), np.float64)
        return np.asarray(fn(np.ones(shape)), np.float64) - offset, offset

    @staticmethod
    def _affine(x, scale: np.ndarray, offset: np.ndarray):
        try:
            import torch

            if torch.is_tensor(x):
                s = torch.as_tensor(scale, dtype=x.dtype, device=x.device)
                o = torch.as_tensor(offset, dtype=x.dtype, device=x.device)
                return x * s + o
        except ImportError:  # pragma: no cover
            pass
        return np.asarray(x, np.float64) * scale + offset

    def to_arrays(self, prefix: str = "f") -> dict[str, np.ndarray]:
        """Arrays to store with the data (e.g. in the features npz)."""
        return {f"{prefix}_min": self.data_min, f"{prefix}_max": self.data_max,
                f"{prefix}_range": np.array([self.lo, self.hi])}

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "f") -> "FeatureScaler":
        """Inverse of :meth:`to_arrays` (any mapping, e.g. an open ``np.load`` npz)."""
        rng = np.asarray(arrays[f"{prefix}_range"]) if f"{prefix}_range" in arrays else np.array([-0.95, 0.95])
        return cls(np.asarray(arrays[f"{prefix}_min"]), np.asarray(arrays[f"{prefix}_max"]), float(rng[0]), float(rng[1]))
