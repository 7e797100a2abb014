"""Per-vertex deformation gradients T_i of meshes relative to a template (paper Eq. 1), batched.

``T_i = argmin_T sum_{j in N(i)} w_ij |(p_j - p_i) - T (q_j - q_i)|^2 + |nu'_i - T nu_i|^2`` where q is the
template, p the deformed mesh and ``nu`` an optional "normal row" (the vertex normal scaled by
``normal_scale`` times the mean one-ring edge length, as in the ACAP authors' code). The normal row
makes the 3x3 normal matrix well conditioned where the one ring is (nearly) planar.

Edge weights (``weighting``):

* ``"acap"`` (default): ``w = sqrt(sexp(c))`` with ``c = (cot a + cot b) / 2`` and ``sexp(x) = exp(x)``
  for ``x <= 0`` else ``1 + x`` (NaN or > 1e5 -> 1): the ACAP authors' weights, always positive.
* ``"cotangent"``: the paper's ``c_ij`` clamped at 0 (negative cotangent weights would make the
  least-squares fit indefinite).
* ``"uniform"``: 1.

Everything is vectorised with sparse matrices; the per-template part lives in :class:`DeformationFit`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from bodydata.errors import MeshError

__all__ = ["edge_weights", "face_normal_vertex_normals", "DeformationFit", "WEIGHTINGS"]

WEIGHTINGS = ("acap", "cotangent", "uniform")


def _sexp(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0, np.exp(np.minimum(x, 0.0)), 1.0 + x)


def edge_weights(vertices: np.ndarray, faces: np.ndarray, weighting: str = "acap") -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges and their weights.

    vertices : (n, 3) float64; faces : (m, 3) int64.
    Returns ``edges (e, 2) int64`` (i < j, sorted) and ``w (e,) float64`` (see module docstring).
    """
    from bodydata.mesh.cotangent import cotangent_weights

    e, c = cotangent_weights(np.asarray(vertices, np.float64), np.asarray(faces, np.int64))
    if weighting == "acap":
        w = np.sqrt(_sexp(c))
        w = np.where(~np.isfinite(w) | (w > 1e5), 1.0, w)
    elif weighting == "cotangent":
        w = np.maximum(c, 0.0)
    elif weighting == "uniform":
        w = np.ones(len(e))
    else:
        raise ValueError(f"unknown weighting {weighting!r}; expected one of {WEIGHTINGS}")
    return e, w.astype(np.float64)


def _face_vertex_incidence(faces: np.ndarray, n: int) -> sp.csr_matrix:
    m = len(faces)
    rows = faces.reshape(-1)
    cols = np.repeat(np.arange(m), 3)
    return sp.csr_matrix((np.ones(3 * m), (rows, cols)), shape=(n, m))


def face_normal_vertex_normals(vertices: np.ndarray, faces: np.ndarray, incidence: sp.csr_matrix | None = None) -> np.ndarray:
    """Vertex normals as the normalised sum of the unit normals of the incident faces (OpenMesh's default).

    vertices : (..., n, 3) float64; faces : (m, 3). Returns (..., n, 3) float64 unit (0 for isolated vertices).
    """
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    fn = np.cross(v[..., f[:, 1], :] - v[..., f[:, 0], :], v[..., f[:, 2], :] - v[..., f[:, 0], :])
    fn = fn / np.maximum(np.linalg.norm(fn, axis=-1, keepdims=True), 1e-300)
    inc = incidence if incidence is not None else _face_vertex_incidence(f, v.shape[-2])
    lead = v.shape[:-2]
    fn2 = np.moveaxis(fn.reshape(-1, f.shape[0], 3), 0, 1).reshape(f.shape[0], -1)  # (m, B*3)
    vn = np.asarray(inc @ fn2).reshape(v.shape[-2], -1, 3)
    vn = np.moveaxis(vn, 1, 0).reshape(*lead, v.shape[-2], 3)
    return vn / np.maximum(np.linalg.norm(vn, axis=-1, keepdims=True), 1e-300)


@dataclass
class DeformationFit:
    """Precomputed per-template data for the per-vertex fit of Eq. 1.

    Build with :meth:`from_template`; call :meth:`gradients` on a batch of deformed vertex arrays.
    """

    n_vertices: int
    faces: np.ndarray          # (m, 3) int64
    edges: np.ndarray          # (e, 2) int64, i < j
    weights: np.ndarray        # (e,) float64, symmetric edge weights w_ij
    normal_scale: float
    _mc: tuple                 # three (n, n) csr: M_c[i, j] = w_ij (q_j - q_i)[c]
    _msum: np.ndarray          # (n, 3): sum_j w_ij (q_j - q_i)
    _ref_normal_row: np.ndarray  # (n, 3): nu_i of the template
    _a_inv: np.ndarray         # (n, 3, 3): inverse normal matrices
    _len_op: sp.csr_matrix     # (n, n) with 1 / deg(i) at (i, j): mean one-ring edge length
    _incidence: sp.csr_matrix  # (n, m) vertex-face incidence

    @classmethod
    def from_template(
        cls,
        vertices: np.ndarray,
        faces: np.ndarray,
        weighting: str = "acap",
        normal_scale: float = 0.3,
    ) -> "DeformationFit":
        """Precompute the fit for a template ``vertices (n, 3) float64``, ``faces (m, 3) int64``."""
        q = np.asarray(vertices, np.float64)
        f = np.asarray(faces, np.int64)
        n = len(q)
        if q.ndim != 2 or q.shape[1] != 3:
            raise MeshError(None, f"template vertices have shape {q.shape}, expected (n, 3)")
        e, w = edge_weights(q, f, weighting)
        i = np.concatenate([e[:, 0], e[:, 1]])
        j = np.concatenate([e[:, 1], e[:, 0]])
        ww = np.concatenate([w, w])
        d = q[j] - q[i]                                       # (E2, 3) directed offsets
        mc = tuple(sp.csr_matrix((ww * d[:, c], (i, j)), shape=(n, n)) for c in range(3))
        msum = np.zeros((n, 3))
        np.add.at(msum, i, ww[:, None] * d)
        deg = np.bincount(i, minlength=n).astype(np.float64)
        if np.any(deg == 0):
            raise MeshError(None, f"template vertex {int(np.flatnonzero(deg == 0)[0])} has no edges (isolated vertex)")
        len_op = sp.csr_matrix((1.0 / deg[i], (i, j)), shape=(n, n))
        inc = _face_vertex_incidence(f, n)
        a = np.zeros((n, 3, 3))
        np.add.at(a, i, ww[:, None, None] * d[:, :, None] * d[:, None, :])
        nu = cls._normal_row(q[None], f, len_op, inc, normal_scale)[0]
        a += nu[:, :, None] * nu[:, None, :]
        det = np.linalg.det(a)
        scale = np.einsum("nii->n", a) ** 3
        bad = np.abs(det) <= 1e-12 * np.maximum(scale, 1e-300)
        if np.any(bad):
            raise MeshError(
                None,
                f"the one ring of template vertex {int(np.flatnonzero(bad)[0])} does not span 3-D "
                f"({int(bad.sum())} such vertices); use a non-zero normal_scale",
            )
        return cls(n, f, e, w, float(normal_scale), mc, msum, nu, np.linalg.inv(a), len_op, inc)

    @staticmethod
    def _normal_row(p: np.ndarray, faces, len_op, inc, normal_scale) -> np.ndarray:
        """(B, n, 3): vertex normal times normal_scale times the mean one-ring edge length."""
        if normal_scale == 0:
            return np.zeros(p.shape)
        nrm = face_normal_vertex_normals(p, faces, inc)
        # mean |p_j - p_i| over the one ring; the edge lengths are per directed edge
        coo = len_op.tocoo()
        lens = np.linalg.norm(p[:, coo.col] - p[:, coo.row], axis=-1)  # (B, E2)
        mean_len = np.stack([np.bincount(coo.row, weights=coo.data * lb, minlength=p.shape[1]) for lb in lens])
        return nrm * (normal_scale * mean_len)[..., None]

    def gradients(self, vertices: np.ndarray) -> np.ndarray:
        """Deformation gradients of a batch.

        vertices : (B, n, 3) or (n, 3) float64 in the template's vertex order.
        Returns (B, n, 3, 3) (or (n, 3, 3)) float64 with ``T[b, i] @ (q_j - q_i) ~ p_j - p_i``.
        """
        p = np.asarray(vertices, np.float64)
        single = p.ndim == 2
        if single:
            p = p[None]
        if p.ndim != 3 or p.shape[1:] != (self.n_vertices, 3):
            raise MeshError(None, f"vertices have shape {p.shape}, expected (B, {self.n_vertices}, 3)")
        bsz, n = p.shape[0], self.n_vertices
        flat = np.moveaxis(p, 0, 1).reshape(n, bsz * 3)             # (n, B*3)
        # B_i[a, c] = sum_j w (p_j - p_i)[a] d[c] = (M_c p)[i, a] - p[i, a] * msum[i, c]
        bm = np.stack([np.asarray(m @ flat).reshape(n, bsz, 3) for m in self._mc], axis=-1)  # (n, B, 3a, 3c)
        bm = np.moveaxis(bm, 1, 0) - p[..., :, None] * self._msum[None, :, None, :]
        if self.normal_scale != 0:
            nu_t = self._normal_row(p, self.faces, self._len_op, self._incidence, self.normal_scale)
            bm = bm + nu_t[..., :, None] * self._ref_normal_row[None, :, None, :]
        t = bm @ self._a_inv[None]
        return t[0] if single else t
