"""Part-based sparse localised ACAP deformation prior (paper §6 "Connectivity Conversion"): build, save, load, express.

The prior is ``f(w) = f0 + C w`` with ``f0`` the template's own ACAP feature (identity: r = 0, S = I, so
``w = 0`` is the template) and ``C (9 n, K)`` a sparse, localised basis. The paper extracts C with the
sparse dictionary learning of Neumann et al. 2013 but localises by the template's 16 body parts instead of
automatic centres. Here each part k gets a smooth weight ``s_k (n,)`` -- 1 inside the part, falling off
smoothly (squared hat) over ``falloff`` metres of graph distance into its neighbours, normalised so that
``sum_k s_k = 1`` everywhere (a partition of unity) -- and its components are the principal directions
(SVD) of the training features ``(F - f0)`` multiplied by ``s_k``. Every component is therefore zero
outside its part's band (sparse, localised), and with all components the training set is reproduced
exactly because ``F - f0 = sum_k s_k (F - f0)``. The ``K`` components are the ``K`` largest singular
values over all parts (at least one per part when ``K >= 16``). Columns are scaled by the training
standard deviation of their coefficient (``sigma / sqrt(N)``), so ``w`` is in "training standard deviations"
and the registration's ``||w||_1`` penalty has a size-independent meaning. This is the PCA flavour of the
localised decomposition (no iterative L1 refinement of the components as in Neumann et al.).

File format (``.npz``, written atomically): ``format`` = "bodydata-acap-prior", ``version``, ``template_name``,
``n_vertices``, ``K``, ``offset (n, 9)``, the CSC arrays of C (``c_data``, ``c_indices``, ``c_indptr``),
``component_part (K,) int64``, ``singular_values (K,)``, ``part_weights (n, 16) float32``, ``falloff``.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from bodydata.errors import BodydataError

__all__ = ["PriorError", "SparsePrior", "build_prior", "expression_med", "identity_feature", "part_weights"]

FORMAT = "bodydata-acap-prior"
VERSION = 1


class PriorError(BodydataError, ValueError):
    """A prior file or its inputs are unusable (the message says why)."""


def identity_feature(n_vertices: int) -> np.ndarray:
    """(n, 9) float64: the ACAP feature of the template itself (r = 0, S = I)."""
    f = np.zeros((n_vertices, 9))
    f[:, [3, 6, 8]] = 1.0
    return f


def part_weights(vertices: np.ndarray, faces: np.ndarray, part_labels: np.ndarray, falloff: float = 0.05,
                 n_parts: int = 16) -> np.ndarray:
    """Smooth partition of unity over the parts.

    vertices : (n, 3) float64 template; faces : (m, 3) int64; part_labels : (n,) int in 0..n_parts-1.
    falloff : metres of edge-path distance over which a part's weight decays to 0 outside the part.
    Returns (n, n_parts) float64, rows summing to 1, column k = 1 deep inside part k.
    """
    from scipy.sparse.csgraph import dijkstra

    from bodydata.mesh.topology import edges as mesh_edges

    v = np.asarray(vertices, np.float64)
    lab = np.asarray(part_labels, np.int64)
    n = len(v)
    e = mesh_edges(np.asarray(faces, np.int64))
    ln = np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1)
    g = sp.csr_matrix((np.r_[ln, ln], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n))
    raw = np.zeros((n, n_parts))
    for k in range(n_parts):
        src = np.flatnonzero(lab == k)
        if len(src) == 0:
            continue
        if falloff > 0:
            d = dijkstra(g, directed=False, indices=src, min_only=True, limit=falloff)
            raw[:, k] = np.clip(1.0 - d / falloff, 0.0, 1.0) ** 2
        raw[src, k] = 1.0
    return raw / raw.sum(1, keepdims=True)


@dataclass
class SparsePrior:
    """The deformation prior ``f(w) = offset + C w``.

    template_name : str; offset : (n, 9) float64; basis : scipy.sparse.csc_matrix (9 n, K) float64 (vertex-major
    rows, as ``f.reshape(9 n)``); component_part : (K,) int64 part of each column; singular_values : (K,)
    float64; weights : (n, 16) float64 part weights; falloff : metres; weighting : the edge weighting
    (:data:`bodydata.features.deformation.WEIGHTINGS`) the training features were fitted with, which the
    registration's E_prior and reconstruction must use too.
    """

    template_name: str
    offset: np.ndarray
    basis: sp.csc_matrix
    component_part: np.ndarray
    singular_values: np.ndarray
    weights: np.ndarray
    falloff: float
    weighting: str = "acap"

    @property
    def n_vertices(self) -> int:
        return self.offset.shape[0]

    @property
    def K(self) -> int:
        return self.basis.shape[1]

    def features(self, w: np.ndarray) -> np.ndarray:
        """w : (B, K) or (K,) -> features (B, n, 9) (or (n, 9)) float64."""
        w = np.asarray(w, np.float64)
        single = w.ndim == 1
        w2 = np.atleast_2d(w)
        f = self.offset[None] + np.asarray(self.basis @ w2.T).T.reshape(len(w2), self.n_vertices, 9)
        return f[0] if single else f

    def express(self, features: np.ndarray, ridge: float = 1e-8) -> np.ndarray:
        """Least-squares coefficients of features (B, n, 9) (or (n, 9)) -> w (B, K) (or (K,)) float64."""
        f = np.asarray(features, np.float64)
        single = f.ndim == 2
        f = f.reshape(-1, self.n_vertices, 9)
        rhs = np.asarray(self.basis.T @ (f - self.offset[None]).reshape(len(f), -1).T)   # (K, B)
        gram = np.asarray((self.basis.T @ self.basis).todense())
        gram[np.diag_indices_from(gram)] += ridge * max(float(np.trace(gram)) / self.K, 1e-300)
        w = np.linalg.solve(gram, rhs).T
        return w[0] if single else w

    def save(self, path: str | Path) -> Path:
        """Write the prior as ``.npz`` (atomic); returns the path."""
        from bodydata.fsutil import atomic_write_bytes

        c = self.basis.tocsc()
        buf = io.BytesIO()
        np.savez_compressed(
            buf, format=np.array(FORMAT), version=np.array(VERSION), template_name=np.array(self.template_name),
            n_vertices=np.array(self.n_vertices), K=np.array(self.K), offset=self.offset,
            c_data=c.data, c_indices=c.indices.astype(np.int64), c_indptr=c.indptr.astype(np.int64),
            component_part=self.component_part.astype(np.int64), singular_values=self.singular_values,
            part_weights=self.weights.astype(np.float32), falloff=np.array(self.falloff),
            weighting=np.array(self.weighting),
        )
        atomic_write_bytes(path, buf.getvalue())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, template_name: str | None = None, n_vertices: int | None = None) -> SparsePrior:
        """Read a prior written by :meth:`save`; checks the template name / vertex count when given."""
        try:
            z = np.load(path, allow_pickle=False)
            if str(z["format"]) != FORMAT:
                raise PriorError(f"{path}: not a bodydata ACAP prior (format {str(z['format'])!r})")
            n, k = int(z["n_vertices"]), int(z["K"])
            c = sp.csc_matrix((z["c_data"], z["c_indices"], z["c_indptr"]), shape=(9 * n, k))
            prior = cls(str(z["template_name"]), z["offset"], c, z["component_part"], z["singular_values"],
                        z["part_weights"].astype(np.float64), float(z["falloff"]),
                        str(z["weighting"]) if "weighting" in z.files else "acap")
        except (OSError, KeyError, ValueError) as exc:
            if isinstance(exc, PriorError):
                raise
            raise PriorError(f"{path}: cannot read prior ({exc})") from exc
        if template_name is not None and prior.template_name != template_name:
            raise PriorError(f"{path}: prior was built for template {prior.template_name!r}, not {template_name!r}")
        if n_vertices is not None and prior.n_vertices != n_vertices:
            raise PriorError(f"{path}: prior has {prior.n_vertices} vertices, the template {n_vertices}")
        return prior


def build_prior(features: np.ndarray, template_vertices: np.ndarray, faces: np.ndarray, part_labels: np.ndarray,
                K: int, template_name: str = "", falloff: float = 0.05, tol: float = 1e-10,
                weighting: str = "acap") -> SparsePrior:
    """Extract the part-localised basis from training features.

    features : (N, n, 9) float64 ACAP features of N meshes in the template's connectivity.
    template_vertices : (n, 3); faces : (m, 3); part_labels : (n,) in 0..15. K : number of components.
    weighting : the edge weighting the features were extracted with (recorded in the prior).
    Raises :class:`PriorError` when K exceeds the number of non-degenerate directions available.
    """
    f = np.asarray(features, np.float64)
    if f.ndim != 3 or f.shape[2] != 9:
        raise PriorError(f"features have shape {f.shape}, expected (N, n, 9)")
    n_train, n = f.shape[:2]
    if n != len(template_vertices):
        raise PriorError(f"features have {n} vertices, the template {len(template_vertices)}")
    if K < 1:
        raise PriorError("K must be >= 1")
    from bodydata.features.deformation import WEIGHTINGS

    if weighting not in WEIGHTINGS:
        raise PriorError(f"unknown edge weighting {weighting!r}; expected one of {WEIGHTINGS}")
    n_parts = int(np.max(part_labels)) + 1
    sw = part_weights(template_vertices, faces, part_labels, falloff, n_parts)
    off = identity_feature(n)
    d = f - off[None]
    cand = []   # (sigma, part, row vector over support (9 n_sup,), support vertex ids)
    for k in range(n_parts):
        sup = np.flatnonzero(sw[:, k] > 0)
        if len(sup) == 0:
            continue
        x = (d[:, sup, :] * sw[sup, k][None, :, None]).reshape(n_train, -1)
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        keep = s > tol * max(s[0], 1e-300) if len(s) else []
        for j in np.flatnonzero(keep):
            cand.append((float(s[j]), k, vt[j], sup))
    if K > len(cand):
        raise PriorError(f"K = {K} exceeds the {len(cand)} independent part components of {n_train} training meshes")
    order = sorted(range(len(cand)), key=lambda i: -cand[i][0])
    chosen: list[int] = []
    if K >= n_parts:  # every part can deform: its strongest component first
        for k in range(n_parts):
            first = next((i for i in order if cand[i][1] == k), None)
            if first is not None:
                chosen.append(first)
    for i in order:
        if len(chosen) >= K:
            break
        if i not in chosen:
            chosen.append(i)
    chosen.sort(key=lambda i: -cand[i][0])
    rows, cols, vals = [], [], []
    for col, i in enumerate(chosen):
        s, k, vec, sup = cand[i]
        r = (9 * sup[:, None] + np.arange(9)[None]).reshape(-1)
        scale = s / np.sqrt(n_train)
        nz = vec != 0
        rows.append(r[nz])
        cols.append(np.full(int(nz.sum()), col))
        vals.append(vec[nz] * scale)
    c = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(9 * n, K))
    return SparsePrior(template_name, off, c, np.array([cand[i][1] for i in chosen], np.int64),
                       np.array([cand[i][0] for i in chosen]), sw, float(falloff), weighting)


def expression_med(prior: SparsePrior, features: np.ndarray, vertices: np.ndarray, template_vertices: np.ndarray,
                   faces: np.ndarray, device=None) -> dict:
    """How well bodies are expressed by their best ``w``.

    features : (B, n, 9) ACAP features of the bodies; vertices : (B, n, 3) the true bodies (metres).
    Returns {'med_mm': (B,) mean vertex distance of the mesh rebuilt from ``f(w*)`` after the best
    translation, 'floor_mm': (B,) the same for the unprojected features (the ACAP round trip), 'w': (B, K)}.
    """
    from bodydata.device import pick_device
    from bodydata.features.reconstruct import AcapReconstructor

    rec = AcapReconstructor(template_vertices, faces, weighting=prior.weighting, device=pick_device(device))
    w = prior.express(features)
    out = {"w": w}
    for key, feats in (("med_mm", prior.features(w)), ("floor_mm", np.asarray(features, np.float64))):
        p = rec(feats.reshape(len(feats), -1, 9))
        v = np.asarray(vertices, np.float64)
        p = p - p.mean(1, keepdims=True) + v.mean(1, keepdims=True)
        out[key] = 1000.0 * np.linalg.norm(p - v, axis=-1).mean(1)
    return out
