"""Robust per-vertex fusion of several un-posed meshes of one subject (rigid alignment to a common frame, part-wise reweighted mean).

Steps (:func:`fuse`), meshes (P, n, 3) in one connectivity:

1. every mesh is rigidly aligned to the per-vertex median of the set, twice, the second time with Cauchy
   weights of each vertex's distance to the median (scale ``align_scale``), so a displaced limb does not tilt
   its whole mesh;
2. each mesh gets one weight per body part: ``1 / (1 + (d / deviation_scale)^2)`` of the RMS distance ``d`` of
   the part to the median (a region that disagrees with the other poses is out-voted) times
   ``1 / (1 + (strain / strain_scale)^2)`` of the part's un-posing strain when given (a pose whose un-posing
   stretched a region is trusted less there);
3. the per-vertex weights (each vertex its part's weight) are smoothed over the mesh a few steps so that no
   seam appears at part borders, times a Cauchy weight of the vertex's own distance to the current fused mesh
   (catches the border of a displaced region, which the smoothing blurred); the fused mesh is the weighted
   mean, each mesh realigned to it with these weights, twice.

With one mesh the result is that mesh; with copies of one mesh it is that mesh.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodydata.errors import BodydataError
from bodydata.mesh.alignment import align
from bodydata.mesh.topology import adjacency_matrix

__all__ = ["FuseError", "FusionResult", "fuse", "part_strain"]


class FuseError(BodydataError, ValueError):
    """No mesh to fuse, or shapes that do not agree."""


@dataclass
class FusionResult:
    """vertices : (n, 3) float64 fused mesh (frame of the median of the aligned inputs); part_weights : (P, k)
    float64 weight of each mesh per part (rows are meshes, columns parts ``0..k-1``); deviation_mm : (P, k) float64
    RMS distance of each aligned mesh's part to the median (mm)."""

    vertices: np.ndarray
    part_weights: np.ndarray
    deviation_mm: np.ndarray


def part_strain(before: np.ndarray, after: np.ndarray, faces: np.ndarray, labels: np.ndarray, n_parts: int) -> np.ndarray:
    """(k,) float64 mean |log(edge length ratio)| per part between two meshes (n, 3) of one connectivity (an edge
    belongs to the part of its first vertex; a part without edges gets 0)."""
    from bodydata.mesh.topology import edges

    e = edges(np.asarray(faces))
    l0 = np.linalg.norm(before[e[:, 1]] - before[e[:, 0]], axis=-1)
    l1 = np.linalg.norm(after[e[:, 1]] - after[e[:, 0]], axis=-1)
    strain = np.abs(np.log(np.maximum(l1, 1e-12) / np.maximum(l0, 1e-12)))
    part = np.asarray(labels)[e[:, 0]]
    total = np.bincount(part, weights=strain, minlength=n_parts)
    count = np.bincount(part, minlength=n_parts)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def fuse(meshes: np.ndarray, faces: np.ndarray, labels: np.ndarray, strain: np.ndarray | None = None,
         deviation_scale: float = 0.005, strain_scale: float = 0.05, align_scale: float = 0.01,
         smooth_steps: int = 5) -> FusionResult:
    """Fuse meshes (P, n, 3) float64 (metres) with part labels (n,) int (module docstring).

    faces : (m, 3) int; strain : optional (P, k) float64 un-posing strain per mesh and part (:func:`part_strain`).
    """
    x = np.asarray(meshes, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != 3 or len(x) == 0:
        raise FuseError(f"meshes have shape {x.shape}, expected (P >= 1, n, 3)")
    lab = np.asarray(labels, dtype=np.int64)
    if lab.shape != (x.shape[1],) or lab.min() < 0:
        raise FuseError(f"labels have shape {lab.shape}, expected ({x.shape[1]},) non-negative")
    k = int(lab.max()) + 1
    med = np.median(x, axis=0)
    x = align(x, med).apply(x)
    med = np.median(x, axis=0)
    dist = np.linalg.norm(x - med, axis=-1)
    aligned = []
    for p in range(len(x)):  # robust realignment: a broken region must not tilt the rest of its mesh
        w = 1.0 / (1.0 + (dist[p] / align_scale) ** 2)
        aligned.append(align(x[p], med, weights=w).apply(x[p]))
    x = np.stack(aligned)
    med = np.median(x, axis=0)
    sq = np.sum((x - med) ** 2, axis=-1)  # (P, n)
    count = np.bincount(lab, minlength=k).astype(np.float64)
    dev = np.sqrt(np.stack([np.bincount(lab, weights=s, minlength=k) for s in sq]) / np.maximum(count, 1))
    wpart = 1.0 / (1.0 + (dev / deviation_scale) ** 2)
    if strain is not None:
        st = np.asarray(strain, dtype=np.float64)
        if st.shape != (len(x), k):
            raise FuseError(f"strain has shape {st.shape}, expected ({len(x)}, {k})")
        wpart = wpart * 1.0 / (1.0 + (st / strain_scale) ** 2)
    wv = wpart[:, lab]  # (P, n)
    if smooth_steps > 0:
        adj = adjacency_matrix(np.asarray(faces), x.shape[1]).astype(np.float64)
        deg = np.asarray(adj.sum(1)).ravel() + 1.0
        for _ in range(smooth_steps):
            wv = ((adj @ wv.T).T + wv) / deg
    # a vertex that itself disagrees (a displaced region's border, where the part weights were smoothed) is
    # down-weighted too; then each mesh is realigned to the fused mesh with its vertex weights, once more
    fused = med
    for _ in range(2):
        wvert = 1.0 / (1.0 + (np.linalg.norm(x - fused, axis=-1) / deviation_scale) ** 2)
        w = np.maximum(wv * wvert, 1e-12)
        fused = np.einsum("pn,pnd->nd", w, x) / w.sum(0)[:, None]
        x = np.stack([align(x[p], fused, weights=w[p]).apply(x[p]) for p in range(len(x))])
    w = np.maximum(wv / (1.0 + (np.linalg.norm(x - fused, axis=-1) / deviation_scale) ** 2), 1e-12)
    fused = np.einsum("pn,pnd->nd", w, x) / w.sum(0)[:, None]
    return FusionResult(fused, wpart, dev * 1000.0)
