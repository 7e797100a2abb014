"""ACAP deformation features of meshes relative to a template (paper §3, Eq. 1; Gao et al. TVCG 2019).

Layout of one mesh's feature ``f``: ``(n, 9)`` float64, per vertex ``[r_x, r_y, r_z, s11, s12, s13, s22, s23,
s33]`` -- the consistent rotation log ``r_i`` (axis times angle, radians, any magnitude) and the upper
triangle of the symmetric stretch ``S_i`` with ``T_i = exp(r_i) S_i``; flattened, ``f.reshape(9 n)`` is the
paper's ``f in R^{9|V|}`` (vertex-major). A batch is ``(B, n, 9)``.

Defaults and why: edge weights ``"acap"`` (``sqrt(sexp((cot a + cot b)/2))``) plus the normal row (0.3 x mean
one-ring edge length), i.e. the weighting of the ACAP authors' code that the paper uses for its features.
The paper's raw cotangent weights can be negative on obtuse triangles, which makes the per-vertex fit
indefinite, and a nearly planar one ring leaves the fit without the normal row ill conditioned. The
rotations are made consistent by the fast graph method (:mod:`bodydata.features.consistency`), the global
2 pi shift chosen to minimise sum |r_i|^2. ``compat="acap-cpp"`` reproduces the authors' C++ output instead
(see :mod:`bodydata.features.compat`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bodydata.errors import MeshError
from bodydata.features.consistency import consistent_rotations
from bodydata.features.deformation import DeformationFit
from bodydata.features.polar import polar_decompose, rotation_log, sym_to_vec6

__all__ = ["AcapResult", "AcapExtractor", "acap_features", "FEATURE_LAYOUT"]

FEATURE_LAYOUT = ("r_x", "r_y", "r_z", "s11", "s12", "s13", "s22", "s23", "s33")
COMPAT_MODES = (None, "acap-cpp")


@dataclass
class AcapResult:
    """Features of a batch: ``f (B, n, 9)`` float64 (layout :data:`FEATURE_LAYOUT`), ``signs (B, n) int8``,
    ``turns (B, n) int64``, ``axis_cost (B,)`` (disagreeing edges), ``turn_cost (B,)`` (sum of squared angle
    differences over edges), ``g (B, 16, 9)`` coarse features or None, ``exact_gap`` (B,) or None."""

    f: np.ndarray
    signs: np.ndarray
    turns: np.ndarray
    axis_cost: np.ndarray
    turn_cost: np.ndarray
    g: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def flat(self) -> np.ndarray:
        """(B, 9 n) float64: the paper's f vectors."""
        return self.f.reshape(self.f.shape[0], -1)


class AcapExtractor:
    """Per-template ACAP feature extractor; precomputes the fit, the edges and the parts in ``__init__``.

    vertices : (n, 3) float64 template (reference) vertices; faces : (m, 3) int64.
    part_labels : (n,) int in 0..K-1, needed for coarse features (paper: K = 16).
    weighting, normal_scale : see :mod:`bodydata.features.deformation`.
    consistency : ``"fast"`` (graph method, default), ``"exact"`` (MIP, slow; see
    :mod:`bodydata.features.consistency_exact`) or ``"none"`` (principal logs).
    compat : None or ``"acap-cpp"`` (the ACAP C++ conventions: vertex 0 keeps its principal log).
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, part_labels: np.ndarray | None = None,
                 weighting: str = "acap", normal_scale: float = 0.3, consistency: str = "fast",
                 compat: str | None = None, exact_time_limit: float = 60.0):
        from bodydata.mesh.topology import edges as mesh_edges

        if compat not in COMPAT_MODES:
            raise ValueError(f"unknown compat mode {compat!r}; expected one of {COMPAT_MODES}")
        if consistency not in ("fast", "exact", "none"):
            raise ValueError(f"unknown consistency method {consistency!r}")
        self.template = np.asarray(vertices, np.float64)
        self.faces = np.asarray(faces, np.int64)
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise MeshError(None, f"template faces have shape {self.faces.shape}, expected (m, 3)")
        self.n_vertices = len(self.template)
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= self.n_vertices):
            raise MeshError(None, f"template faces index outside [0, {self.n_vertices})")
        self.compat = compat
        if compat == "acap-cpp":
            weighting, normal_scale = "acap", 0.3
        self.weighting = weighting
        self.fit = DeformationFit.from_template(self.template, self.faces, weighting, normal_scale)
        self.edges = mesh_edges(self.faces)
        from bodydata.features.consistency import DualGraph

        self.dual = DualGraph.from_faces(self.n_vertices, self.faces)
        self.consistency = consistency
        self.anchor = 0 if compat == "acap-cpp" else "min-norm"
        self.exact_time_limit = exact_time_limit
        self._canon = _canonical_faces(self.faces)
        self.coarse = None
        if part_labels is not None:
            from bodydata.features.coarse import CoarseFit

            self.coarse = CoarseFit(self.template, part_labels)

    def check_mesh(self, vertices: np.ndarray, faces: np.ndarray | None = None, path=None) -> np.ndarray:
        """Validate one mesh against the template's connectivity; returns vertices (n, 3) float64."""
        v = np.asarray(vertices, np.float64)
        if v.ndim != 2 or v.shape[1] != 3:
            raise MeshError(path, f"vertices have shape {v.shape}, expected (n, 3)")
        if len(v) != self.n_vertices:
            raise MeshError(path, f"mesh has {len(v)} vertices, the template has {self.n_vertices}: "
                                  "ACAP features need the template's connectivity")
        if faces is not None:
            f = np.asarray(faces)
            if f.shape != self.faces.shape:
                raise MeshError(path, f"mesh has {f.shape[0]} faces, the template {self.faces.shape[0]}: "
                                      "ACAP features need the template's connectivity")
            if not np.array_equal(f, self.faces) and not np.array_equal(_canonical_faces(f), self._canon):
                raise MeshError(path, "mesh has different faces than the template (same counts, other triangles or "
                                      "orientation): ACAP features need the template's connectivity")
        if not np.all(np.isfinite(v)):
            raise MeshError(path, "mesh has non-finite vertex coordinates")
        return v

    def __call__(self, vertices: np.ndarray, coarse: bool = False) -> AcapResult:
        """Features of a batch ``vertices (B, n, 3)`` (or one mesh ``(n, 3)``) in the template's vertex order."""
        p = np.asarray(vertices, np.float64)
        if p.ndim == 2:
            p = p[None]
        if p.ndim != 3 or p.shape[1:] != (self.n_vertices, 3):
            raise MeshError(None, f"vertices have shape {p.shape}, expected (B, {self.n_vertices}, 3)")
        t = self.fit.gradients(p)
        rot, sym = polar_decompose(t)
        aa = rotation_log(rot)
        bsz, n = p.shape[:2]
        f = np.empty((bsz, n, 9))
        f[..., 3:] = sym_to_vec6(sym)
        signs = np.ones((bsz, n), np.int8)
        turns = np.zeros((bsz, n), np.int64)
        acost = np.zeros(bsz)
        tcost = np.zeros(bsz)
        gaps = []
        for b in range(bsz):  # one consistency solve per mesh (graph algorithms)
            if self.consistency == "none":
                f[b, :, :3] = aa.vector[b]
                continue
            if self.consistency == "exact":
                from bodydata.features.consistency_exact import exact_consistent_rotations

                cr = exact_consistent_rotations(aa.axis[b], aa.theta[b], self.edges, self.faces, anchor=self.anchor,
                                                time_limit=self.exact_time_limit, dual_graph=self.dual)
                gaps.append((cr.axis_gap, cr.turn_gap))
            else:
                cr = consistent_rotations(aa.axis[b], aa.theta[b], self.edges, anchor=self.anchor,
                                          dual=self.dual if self.dual.planar else None)
            f[b, :, :3] = cr.r
            signs[b], turns[b], acost[b], tcost[b] = cr.signs, cr.turns, cr.axis_cost, cr.turn_cost
        g = None
        if coarse:
            if self.coarse is None:
                raise ValueError("coarse features need part_labels at construction")
            g = self.coarse(p, f[..., :3])
        info = {"exact_gaps": np.array(gaps)} if gaps else {}
        return AcapResult(f, signs, turns, acost, tcost, g, info)

    def from_meshes(self, meshes, coarse: bool = False) -> AcapResult:
        """Features of ``MeshData``-like objects (``.vertices``, ``.faces``, ``.path``), checking connectivity."""
        vs = [self.check_mesh(m.vertices, m.faces, getattr(m, "path", None)) for m in meshes]
        return self(np.stack(vs), coarse=coarse)


def _canonical_faces(faces: np.ndarray) -> np.ndarray:
    """Faces rotated to start at their smallest index (orientation kept), rows sorted: equal iff same triangles."""
    f = np.asarray(faces, np.int64)
    k = np.argmin(f, axis=1)
    rolled = np.stack([f[np.arange(len(f)), (k + s) % 3] for s in range(3)], axis=1)
    return rolled[np.lexsort(rolled.T[::-1])]


def acap_features(template_vertices: np.ndarray, faces: np.ndarray, vertices: np.ndarray, **kwargs) -> np.ndarray:
    """One call: ACAP features ``(B, n, 9)`` (or ``(n, 9)``) of ``vertices (B, n, 3)`` (or ``(n, 3)``).

    Keyword arguments go to :class:`AcapExtractor`.
    """
    single = np.asarray(vertices).ndim == 2
    res = AcapExtractor(template_vertices, faces, **kwargs)(vertices)
    return res.f[0] if single else res.f
