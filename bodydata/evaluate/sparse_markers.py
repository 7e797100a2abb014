"""Table 5: fitting from K sparse marker vertices only (Eq. 15 on the markers), measured on the whole mesh.

The paper fits its model to 39 hand-placed markers of DFaust scans and reports PMD; with test meshes in the
template's connectivity we know every vertex, so the fitted mesh is compared with the whole true mesh (MED, mm,
after the fit's own R, t, as Table 2) and with the markers it saw (marker error, mm). The fit starts from zero
codes and the Kabsch alignment of the markers, since a marker set gives no features for the encoder.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bodydata.evaluate.fit import FitSettings, MeshFitter
from bodydata.evaluate.metrics import vertex_errors_mm

if TYPE_CHECKING:
    from bodydata.evaluate.reconstruction import SplitMeshes
    from bodydata.model.embedding import BodyEmbedding

__all__ = ["SparseMarkerFit", "sparse_marker_fit", "marker_set_name"]


@dataclass
class SparseMarkerFit:
    """One run's sparse-marker fits of one role's test meshes.

    markers : the marker set's name.  k : its size.  med_mm : (N,) MED of the whole fitted mesh to the truth.
    marker_mm : (N,) mean distance on the K markers.  iterations : (N,) fit steps (Adam or LM).
    """

    role: str
    markers: str
    k: int
    med_mm: np.ndarray
    marker_mm: np.ndarray
    iterations: np.ndarray


def marker_set_name(spec: str) -> str:
    """How a report names a marker spec: ``landmarks`` or a landmark CSV's file name."""
    from pathlib import Path

    return spec if spec == "landmarks" else Path(spec).name


def sparse_marker_fit(model: "BodyEmbedding", meshes: "SplitMeshes", marker_ids: np.ndarray, name: str,
                      settings: FitSettings = FitSettings(), batch_size: int = 8) -> SparseMarkerFit:
    """Fit every mesh of ``meshes`` from its ``marker_ids`` (K,) vertices only (zero-code start) and measure it."""
    ids = np.asarray(marker_ids, np.int64)
    fitter = MeshFitter(model, dataclasses.replace(settings, init="zero"), ids)
    med, marker, steps = [], [], []
    for b0 in range(0, len(meshes.rows), max(1, batch_size)):
        q = meshes.vertices[b0:b0 + batch_size]
        res = fitter.fit(q)
        med.append(res.med_mm)
        marker.append(vertex_errors_mm(res.vertices[:, ids], q[:, ids]).mean(axis=1))
        steps.append(res.iterations)
    return SparseMarkerFit(meshes.role, name, len(ids), np.concatenate(med), np.concatenate(marker),
                           np.concatenate(steps))
