"""Compatibility with the ACAP authors' C++ ("ACAP_linux"): its conventions, and its LOGRNEW/S text files.

``AcapExtractor(..., compat="acap-cpp")`` follows that code (verified against its output
``LOGRNEW_withopt_GT.txt`` / ``S_withopt_GT.txt`` of ``main <folder> -opt 1``, see tests/features):

* per-vertex fit over the one ring (OpenMesh's vertex-vertex order does not matter for the fit) with edge
  weight ``w = sqrt(sexp((cot a + cot b)/2))`` on the squared residual (the code scales each offset by
  sqrt(w)), plus an unweighted extra row: the vertex normal (normalised sum of the unit face normals,
  OpenMesh's default) times 0.3 x the mean one-ring edge length, of the template resp. the deformed mesh;
* polar decomposition by SVD, the reflection put on the smallest singular value (S may then have one
  negative eigenvalue);
* rotation logs made consistent by the axis-sign program (edges weighted by the sign of a_i . a_j only;
  the code's thresholds are ints and truncate to 0) and the integer-turn program (unweighted squared
  angle differences over edges), vertex 0 keeping its principal log (turn 0, the code's constraint);
* output per shape: one text row of n x 9 numbers, per vertex the row-major 3x3 matrix log(R_i)
  (skew-symmetric, angle times axis) resp. S_i.

Differences that remain: the C++ solves both programs with Gurobi within 120 s and a 20 % (axis) /
5 %-99.99 % (turns) MIP gap, so on hard shapes its result may differ from this exact/fast optimum; for
boundary vertices it takes cotangents of a wrapped-around fan (closed meshes are unaffected).
"""
from __future__ import annotations

import os

import numpy as np

from bodydata.features.polar import sym_to_vec6, vec6_to_sym
from bodydata.mesh.rotations import skew

__all__ = ["to_acap_matrices", "from_acap_matrices", "write_acap_txt", "read_acap_txt"]


def to_acap_matrices(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f (B, n, 9) -> (log R (B, n, 3, 3) skew, S (B, n, 3, 3) symmetric)."""
    f = np.asarray(f, np.float64)
    return skew(f[..., :3]), vec6_to_sym(f[..., 3:9])


def from_acap_matrices(logr: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(log R (..., 3, 3), S (..., 3, 3)) -> f (..., 9)."""
    logr = np.asarray(logr, np.float64)
    r = np.stack([logr[..., 2, 1], logr[..., 0, 2], logr[..., 1, 0]], axis=-1)
    return np.concatenate([r, sym_to_vec6(0.5 * (s + np.swapaxes(s, -1, -2)))], axis=-1)


def read_acap_txt(logr_path: str | os.PathLike, s_path: str | os.PathLike) -> np.ndarray:
    """Read a LOGRNEW.txt / S.txt pair (one row of n*9 numbers per shape) -> f (B, n, 9) float64."""
    from bodydata.errors import BodydataError

    lr = np.atleast_2d(np.loadtxt(logr_path))
    ss = np.atleast_2d(np.loadtxt(s_path))
    if lr.shape != ss.shape or lr.shape[1] % 9:
        raise BodydataError(f"{logr_path}: shape {lr.shape} does not match {s_path} {ss.shape} as rows of n*9 numbers")
    b, n = lr.shape[0], lr.shape[1] // 9
    return from_acap_matrices(lr.reshape(b, n, 3, 3), ss.reshape(b, n, 3, 3))


def write_acap_txt(f: np.ndarray, logr_path: str | os.PathLike, s_path: str | os.PathLike) -> None:
    """Write features f (B, n, 9) as the C++ code's LOGRNEW.txt / S.txt (atomically)."""
    from bodydata.fsutil import atomic_path

    logr, s = to_acap_matrices(f)
    for path, arr in ((logr_path, logr), (s_path, s)):
        with atomic_path(path) as tmp:
            np.savetxt(tmp, arr.reshape(arr.shape[0], -1), fmt="%.9g")
