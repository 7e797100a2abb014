"""Mesh errors in millimetres and their summaries: MED (mean Euclidean vertex distance), the paper's measure.

Inputs are metres (the project's unit inside); everything returned here is millimetres (the unit of reports).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["MM_PER_M", "ErrorSummary", "vertex_errors_mm", "med_mm", "procrustes_joint_error_mm", "summarize",
           "ced_curve"]

MM_PER_M = 1000.0


def vertex_errors_mm(a: np.ndarray, b: np.ndarray, rigid: bool = False) -> np.ndarray:
    """Per-vertex distances in mm between corresponding vertices.

    a, b : (n, 3) or (B, n, 3) float metres. rigid : first align each ``a`` onto its ``b`` (Kabsch).
    Returns (n,) or (B, n) float64 mm.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.shape[-1] != 3:
        raise ValueError(f"vertex arrays differ in shape: {a.shape} vs {b.shape}")
    if rigid:
        from bodydata.mesh.alignment import align

        a = align(a, b).apply(a)
    return MM_PER_M * np.linalg.norm(a - b, axis=-1)


def med_mm(a: np.ndarray, b: np.ndarray, rigid: bool = False) -> np.ndarray:
    """MED in mm: the mean over vertices of :func:`vertex_errors_mm`; () or (B,) float64."""
    return vertex_errors_mm(a, b, rigid).mean(axis=-1)


def procrustes_joint_error_mm(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean joint distance in mm after Procrustes analysis (rotation, translation and scale of ``pred`` onto
    ``truth``), the paper's Table 6 measure. pred, truth : (J, 3) or (B, J, 3) float metres -> () or (B,) float64."""
    from bodydata.mesh.alignment import align

    p = np.asarray(pred, np.float64)
    t = np.asarray(truth, np.float64)
    if p.shape != t.shape or p.shape[-1] != 3:
        raise ValueError(f"joint arrays differ in shape: {p.shape} vs {t.shape}")
    return MM_PER_M * np.linalg.norm(align(p, t, scale=True).apply(p) - t, axis=-1).mean(axis=-1)


@dataclass
class ErrorSummary:
    """Summary of per-mesh errors (mm): count, mean, median, std (population), 95th percentile, max."""

    count: int
    mean: float
    median: float
    std: float
    p95: float
    max: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(values) -> ErrorSummary:
    """Summary of a sequence of per-mesh errors (NaN entries, i.e. failed meshes, are left out)."""
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    if not len(v):
        nan = float("nan")
        return ErrorSummary(0, nan, nan, nan, nan, nan)
    return ErrorSummary(len(v), float(v.mean()), float(np.median(v)), float(v.std()), float(np.percentile(v, 95)),
                        float(v.max()))


def ced_curve(errors_mm, thresholds_mm: np.ndarray) -> np.ndarray:
    """Cumulative error distribution: the fraction of ``errors_mm`` (any shape; e.g. every vertex of every test
    mesh) at most each threshold. thresholds_mm : (T,) -> (T,) float64 in [0, 1]."""
    e = np.sort(np.asarray(errors_mm, np.float64).ravel())
    if not len(e):
        return np.zeros(len(thresholds_mm))
    return np.searchsorted(e, np.asarray(thresholds_mm, np.float64), side="right") / len(e)
