"""Fitting a trained embedding to scans and point clouds in any connectivity: a start similarity, then point-to-plane ICP over the codes.

The energy per scan b, with x_i = s R p_i(e_s, e_p) + t the decoded body in the scan's frame (metres)::

    E_b = λ n (mean_fwd r_i^2 + ρ mean_back r_j^2 + λ_lan mean_l |x_l - q_l|^2) + λ_β |e_s|^2 + λ_θ |e_p|^2

* forward pairs: every decoded surface vertex x_i (not the template's cavity vertices: no scanner sees them) with its
  closest scan point q_j, residual r_i = n_j . (x_i - q_j) along the scan's normal (a vertex slides along the scan's
  tangent plane, so the scan's sampling costs little);
* backward pairs: every scan point q_j with its closest decoded vertex x_i, residual n_i . (q_j - x_i) along the
  decoded normal (it pulls the body onto scan regions no vertex is near yet: a limb in another pose);
* both gated by a distance (a shrinking schedule, one ICP round per gate: 10, 5, 3, 2, 1 cm by default) and by the
  angle between the two normals (60 degrees: the back of a leg does not pair with the front of the other);
* landmarks (when the scan has them): template landmark vertex x_l and the scan's landmark point q_l, with λ_lan
  1, 0.1, then 0 over the rounds: the landmarks place the limbs while the gates are wide, then the surface decides
  (landmarks marked on a scan are off by millimetres; as in the convert stage's registration). Without them
  (3 trained-on anny-lite bodies, PCA run, 200 steps, earlier step sizes: MED 20 / 14 / 47 mm as a mesh / point
  cloud / front half without them, 14 / 13 / 30 mm with them: ``benchmarks/bench_fit_scan.py``);
* residuals in millimetres and means scaled by the template's surface vertex count n, so that λ = 1 per mm² and
  λ_β = λ_θ = 1 keep Eq. 15's meaning (:mod:`bodydata.evaluate.fit`) for any scan density; a single-latent model
  (meshVAE, PCA) has one prior term λ_β |z|^2.

Start: codes zero (the encoder needs a mesh in the template's connectivity, which a scan is not); (s, R, t) from a
*start hook*, a callable ``(ScanTarget, reference (n, 3)) -> Similarity`` mapping the zero-code body onto the scan.
:class:`LandmarkStart` is the built-in one (Umeyama on the landmarks the scan and the template share; the scan's
landmark CSV names scan vertices as the convert stage reads them); an automatic start (a body-model fit) plugs in
the same way. The scale stays at the start's value unless ``fit_scale`` (a scan whose units are unknown): body size is
the shape code's job, and a free scale would trade against it.

Optimisation: Adam on the codes, the rotation vector ω (R = exp([ω]x) R_0, turning about the reference body's
centroid so that R and t do not trade), t and log s; correspondences are found again every ``refresh`` steps
within a round; the step decays exponentially over all rounds. ``groups`` ties scans to subjects: scans of one group
share one e_s (``--share-shape``, the paper's "_s" rows) and keep their own e_p, R, t, s.

Point clouds (no faces): normals from a PCA of each point's ``normal_neighbours`` nearest points, oriented after the
start by the nearest start-body vertex normal (a PCA normal has no sign; the body's own normals, once the start has
placed it, say which side is out; :func:`bodydata.mesh.pointcloud.pca_normals`).

PMD (:func:`point_to_mesh_mm`): every scan point's distance to the fitted mesh's surface (exact closest point), mm;
``pmd_mm`` leaves out the points whose closest fitted-mesh point lies on a hand part (the paper's PMD: the hands of
a scan are the least reliable and its template fits fingers poorly), ``pmd_wh_mm`` keeps them.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from bodydata.evaluate.fit import FitError, FitSettings, MeshFitter
from bodydata.evaluate.metrics import MM_PER_M

if TYPE_CHECKING:
    from bodydata.model.embedding import BodyEmbedding
    from bodydata.templates.template import Template

__all__ = [
    "LandmarkStart",
    "PointDistances",
    "ScanFitResult",
    "ScanFitSettings",
    "ScanFitter",
    "ScanTarget",
    "Similarity",
    "StartFn",
    "fit_scans_once",
    "point_to_mesh_mm",
]


@dataclass(frozen=True)
class Similarity:
    """x = scale * p @ rotation.T + translation. scale : float; rotation : (3, 3) float64; translation : (3,) float64."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(..., n, 3) -> (..., n, 3) float64."""
        return self.scale * np.asarray(points, np.float64) @ self.rotation.T + self.translation


class ScanTarget:
    """One scan or point cloud to fit, in metres, with its normals and a KD-tree.

    name : for messages. points : (m, 3) float64 metres. faces : (k, 3) int64, k = 0 for a point cloud.
    landmarks : {landmark name: scan point id} or None. normal_neighbours : k of
    :func:`~bodydata.mesh.pointcloud.pca_normals`.
    ``oriented`` is False for a point cloud until :meth:`orient` has given its normals a side.
    """

    def __init__(self, name: str, points: np.ndarray, faces: np.ndarray | None = None,
                 landmarks: Mapping[str, int] | None = None, normal_neighbours: int = 12):
        from scipy.spatial import cKDTree

        from bodydata.mesh.normals import vertex_normals

        p = np.asarray(points, np.float64)
        f = np.zeros((0, 3), np.int64) if faces is None else np.asarray(faces, np.int64).reshape(-1, 3)
        if p.ndim != 2 or p.shape[1] != 3 or len(p) < 10:
            raise FitError(f"{name}: a scan needs at least 10 points (m, 3), got shape {p.shape}")
        if not np.isfinite(p).all():
            raise FitError(f"{name}: the scan has non-finite coordinates")
        if len(f) and (f.min() < 0 or f.max() >= len(p)):
            raise FitError(f"{name}: face indices outside 0..{len(p) - 1}")
        if landmarks is not None:
            bad = [k for k, i in landmarks.items() if not 0 <= int(i) < len(p)]
            if bad:
                raise FitError(f"{name}: landmarks {bad[:3]} are not points of the {len(p)}-point scan")
        self.name = name
        self.points = p
        self.faces = f
        self.landmarks = None if landmarks is None else {k: int(i) for k, i in landmarks.items()}
        self.tree = cKDTree(p)
        if len(f):
            self.normals = vertex_normals(p, f)
            self.oriented = True
        else:
            from bodydata.mesh.pointcloud import pca_normals

            self.normals = pca_normals(p, normal_neighbours, self.tree)
            self.oriented = False

    def orient(self, body: np.ndarray, body_normals: np.ndarray) -> None:
        """Give unoriented normals the side of the nearest vertex of ``body`` (n, 3) with normals (n, 3)."""
        if self.oriented:
            return
        from scipy.spatial import cKDTree

        _, idx = cKDTree(body).query(self.points, k=1)
        flip = np.einsum("ij,ij->i", self.normals, body_normals[idx]) < 0
        self.normals[flip] *= -1.0
        self.oriented = True


#: A start hook: (scan, the zero-code body (n, 3) metres in the decoder's frame) -> the similarity placing that body
#: on the scan. Raise a BodydataError (one line naming the scan) when it cannot.
StartFn = Callable[[ScanTarget, np.ndarray], Similarity]


class LandmarkStart:
    """Start similarity from landmarks: Umeyama (``scale``) or Kabsch from the template's landmark vertices of the
    reference body onto the scan's landmark points with the same names (at least ``min_shared``).

    template_landmarks : {name: template vertex id}. ignore : names left out (the crotch: a saddle whose lowest
    point different rules place centimetres apart, as in the convert stage). max_rms : metres (of the body) of
    landmark residual after the similarity beyond which the landmarks are refused (a body in any pose stays well
    inside; a scan in millimetres read as metres does not)."""

    def __init__(self, template_landmarks: Mapping[str, int], scale: bool = False, min_shared: int = 4,
                 ignore: Sequence[str] = ("crotch",), max_rms: float = 0.5):
        self.template_landmarks = {k: int(v) for k, v in template_landmarks.items() if k not in set(ignore)}
        if len(self.template_landmarks) < min_shared:
            raise FitError(f"the template has {len(self.template_landmarks)} usable landmarks; a landmark start "
                           f"needs {min_shared}")
        self.scale = scale
        self.min_shared = min_shared
        self.max_rms = max_rms

    def __call__(self, target: ScanTarget, reference: np.ndarray) -> Similarity:
        from bodydata.mesh.alignment import align

        if not target.landmarks:
            raise FitError(f"{target.name}: the scan has no landmarks (give a landmark CSV, or an automatic start)")
        names = [k for k in self.template_landmarks if k in target.landmarks]
        if len(names) < self.min_shared:
            raise FitError(f"{target.name}: {len(names)} landmarks shared with the template, a landmark start needs "
                           f"{self.min_shared}")
        src = np.asarray(reference, np.float64)[[self.template_landmarks[k] for k in names]]
        dst = target.points[[target.landmarks[k] for k in names]]
        a = align(src, dst, scale=self.scale)
        if a.rms / a.scale > self.max_rms:
            raise FitError(f"{target.name}: its landmarks are {a.rms / a.scale:.2f} m (rms) from the body's after the "
                           "best similarity: wrong landmarks, or other units (--units, --fit-scale)?")
        return Similarity(float(a.scale), a.rotation, a.translation)


@dataclass(frozen=True)
class ScanFitSettings:
    """Weights (Eq. 15's, see the module docstring) and the ICP schedule; distances in metres of the scan.

    data_weight : λ per mm².  shape_weight, pose_weight : λ_β, λ_θ.  reverse_weight : ρ (backward pairs).
    dists : one distance gate per ICP round (m).  max_angle : normal gate (degrees).
    round_iterations : Adam steps per round.  refresh : steps between closest-point searches within a round.
    lr_code, lr_rotation (rad), lr_translation (m), lr_scale (log s) : Adam steps, decayed
    exponentially to ``lr_decay`` times their value over all rounds.  fit_scale : optimise s.
    normal_neighbours : points per PCA normal of a point cloud.  landmark_weights : λ_lan per round (the last value
    repeats), on the landmarks a scan shares with the template, minus ``ignore_landmarks``.
    """

    data_weight: float = 1.0
    shape_weight: float = 1.0
    pose_weight: float = 1.0
    reverse_weight: float = 1.0
    dists: tuple = (0.10, 0.05, 0.03, 0.02, 0.01)
    max_angle: float = 60.0
    round_iterations: int = 40
    refresh: int = 10
    lr_code: float = 0.15
    lr_rotation: float = 0.02
    lr_translation: float = 0.01
    lr_scale: float = 0.005
    fit_scale: bool = False
    lr_decay: float = 0.05
    normal_neighbours: int = 12
    landmark_weights: tuple = (1.0, 0.1, 0.0)
    ignore_landmarks: tuple = ("crotch",)

    @property
    def iterations(self) -> int:
        """Adam steps in all: rounds x steps per round."""
        return len(self.dists) * self.round_iterations


@dataclass
class ScanFitResult:
    """Fits of B scans (their order), G shape groups.

    z : (B, L) float32 codes; shape : (B, S), pose : (B, P) (None for a single latent; rows of one group share shape).
    groups : (B,) int64 the group of each scan.  scale : (B,), rotation : (B, 3, 3), translation : (B, 3) float64:
    vertices = scale * decoded @ rotation.T + translation.  vertices : (B, n, 3) float64 metres, the fitted meshes in
    the scans' frames (the template's connectivity).  start : the B start similarities.  overlap : (B,) fraction of
    surface vertices with a gated scan point in the last round.  iterations : (B,) Adam steps.  seconds : (B,) wall
    time of the fit / B.
    """

    z: np.ndarray
    shape: np.ndarray | None
    pose: np.ndarray | None
    groups: np.ndarray
    scale: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    vertices: np.ndarray
    start: list[Similarity]
    overlap: np.ndarray
    iterations: np.ndarray
    seconds: np.ndarray


@dataclass
class _Pairs:
    """Gated correspondences of a batch for one refresh (torch, on the fitter's device).

    fwd_q, fwd_n : (B, n, 3) scan point and scan normal of each decoded vertex; fwd_w : (B, n) weight (1/count of
    the body's valid pairs, 0 when gated out).  back_b, back_v : (K,) body and decoded vertex of each valid backward
    pair; back_q : (K, 3) scan points; back_n : (K, 3) decoded normals; back_w : (K,) 1/count per body."""

    fwd_q: torch.Tensor
    fwd_n: torch.Tensor
    fwd_w: torch.Tensor
    back_b: torch.Tensor
    back_v: torch.Tensor
    back_q: torch.Tensor
    back_n: torch.Tensor
    back_w: torch.Tensor
    overlap: np.ndarray


class ScanFitter:
    """Scan fitting for one model: validates the settings, loads the template (faces, cavity, landmarks) once.

    model : a loaded :class:`~bodydata.model.embedding.BodyEmbedding`.  settings : :class:`ScanFitSettings`.
    start : a start hook (:data:`StartFn`); default :class:`LandmarkStart` on the template's landmarks.
    """

    def __init__(self, model: BodyEmbedding, settings: ScanFitSettings = ScanFitSettings(),
                 start: StartFn | None = None, template: Template | None = None):
        from bodydata.templates.template import load_template

        s = settings
        if not s.dists or min(s.dists) <= 0:
            raise FitError(f"dists must be positive distance gates, got {s.dists}")
        if s.round_iterations < 1 or s.refresh < 1:
            raise FitError("round_iterations and refresh must be >= 1")
        if not 0 < s.max_angle <= 180:
            raise FitError(f"max_angle must be in (0, 180] degrees, got {s.max_angle}")
        if not model.template:
            raise FitError("the run records no template, so scans cannot be fitted")
        self.settings = s
        self.mesh = MeshFitter(model, FitSettings(shape_weight=s.shape_weight, pose_weight=s.pose_weight))
        self.model = self.mesh.model
        self.device = self.mesh.device
        self.template = template if template is not None else load_template(model.template)
        self.faces = np.asarray(self.template.faces, np.int64)
        self.n_surface = int(self.template.surface_mask.sum())
        if start is None:
            start = LandmarkStart(self.template.landmarks or {}, scale=s.fit_scale, ignore=s.ignore_landmarks)
        self.start = start
        with torch.no_grad():
            self.reference = self.mesh.decode_vertices(torch.zeros(1, self.mesh.n_latent, device=self.device))[0]
        self.reference_np = self.reference.cpu().numpy()

    def start_similarity(self, target: ScanTarget) -> Similarity:
        """The start hook's similarity for one scan (raises a one-line BodydataError when it has none)."""
        sim = self.start(target, self.reference_np)
        if not (np.isfinite(sim.scale) and sim.scale > 0 and np.isfinite(sim.rotation).all()
                and np.isfinite(sim.translation).all()):
            raise FitError(f"{target.name}: the start similarity is not finite and positive")
        return sim

    # ------------------------------------------------------------------ pieces
    def _codes(self, es: torch.Tensor, ep: torch.Tensor | None, groups: torch.Tensor) -> torch.Tensor:
        return self.model.join(es[groups], ep) if ep is not None else es

    def _pairs(self, x: np.ndarray, targets: Sequence[ScanTarget], dist: float) -> _Pairs:
        from scipy.spatial import cKDTree

        from bodydata.mesh.normals import vertex_normals

        cos_min = np.cos(np.deg2rad(self.settings.max_angle))
        surface = self.template.surface_mask
        bsz, n = x.shape[:2]
        fq, fn, fw = np.zeros((bsz, n, 3)), np.zeros((bsz, n, 3)), np.zeros((bsz, n))
        bb, bv, bq, bn, bw = [], [], [], [], []
        overlap = np.zeros(bsz)
        for b, tg in enumerate(targets):
            xn = vertex_normals(x[b], self.faces)
            d, j = tg.tree.query(x[b], k=1)
            ok = (d <= dist) & (np.einsum("ij,ij->i", xn, tg.normals[j]) >= cos_min) & surface
            fq[b], fn[b] = tg.points[j], tg.normals[j]
            fw[b] = ok / max(int(ok.sum()), 1)
            overlap[b] = ok.sum() / surface.sum()
            vtree = cKDTree(x[b][surface])
            sid = np.flatnonzero(surface)
            d, i = vtree.query(tg.points, k=1)
            i = sid[i]
            ok = (d <= dist) & (np.einsum("ij,ij->i", xn[i], tg.normals) >= cos_min)
            k = int(ok.sum())
            bb.append(np.full(k, b))
            bv.append(i[ok])
            bq.append(tg.points[ok])
            bn.append(xn[i[ok]])
            bw.append(np.full(k, 1.0 / max(k, 1)))

        def t(a, dtype=torch.float64):
            return torch.as_tensor(np.concatenate(a) if isinstance(a, list) else a, dtype=dtype, device=self.device)

        return _Pairs(t(fq), t(fn), t(fw), t(bb, torch.int64), t(bv, torch.int64), t(bq), t(bn), t(bw), overlap)

    def _landmark_pairs(self, targets: Sequence[ScanTarget]):
        """(body (K,), template vertex (K,), scan point (K, 3), weight 1/count per body (K,)) tensors of the landmarks
        each scan shares with the template, or None when no scan has any."""
        tl = {k: v for k, v in (self.template.landmarks or {}).items() if k not in set(self.settings.ignore_landmarks)}
        rows = []
        for b, tg in enumerate(targets):
            names = [k for k in tl if tg.landmarks and k in tg.landmarks]
            rows += [(b, tl[k], tg.points[tg.landmarks[k]], 1.0 / len(names)) for k in names]
        if not rows:
            return None
        b, v, q, w = zip(*rows)
        dev = self.device
        return (torch.as_tensor(b, device=dev), torch.as_tensor(v, device=dev),
                torch.as_tensor(np.array(q), dtype=torch.float64, device=dev),
                torch.as_tensor(w, dtype=torch.float64, device=dev))

    def _data_energy(self, x: torch.Tensor, pr: _Pairs) -> torch.Tensor:
        """(B,) λ n (mean fwd r² + ρ mean back r²), r in mm."""
        s = self.settings
        rf = ((x - pr.fwd_q) * pr.fwd_n).sum(-1) * MM_PER_M
        fwd = (pr.fwd_w * rf * rf).sum(1)
        rb = ((pr.back_q - x[pr.back_b, pr.back_v]) * pr.back_n).sum(-1) * MM_PER_M
        back = torch.zeros(len(x), dtype=x.dtype, device=x.device).index_add(0, pr.back_b, pr.back_w * rb * rb)
        return s.data_weight * self.n_surface * (fwd + s.reverse_weight * back)

    # ------------------------------------------------------------------ the fit
    def fit(self, targets: Sequence[ScanTarget], groups: Sequence[int] | None = None,
            starts: Sequence[Similarity] | None = None) -> ScanFitResult:
        """Fit B scans. groups : (B,) ints 0..G-1, scans of one group share e_s (None: one group per scan).
        starts : the start similarities (computed with the start hook when not given)."""
        from bodydata.features.polar import rotation_exp_torch
        from bodydata.mesh.normals import vertex_normals

        s = self.settings
        bsz = len(targets)
        if bsz == 0:
            raise FitError("no scans to fit")
        g = np.arange(bsz) if groups is None else np.asarray(groups, np.int64)
        if g.shape != (bsz,) or g.min() < 0:
            raise FitError(f"groups must be {bsz} non-negative integers")
        _, g = np.unique(g, return_inverse=True)
        n_groups = int(g.max()) + 1
        shared = n_groups < bsz
        if shared and not self.model.disentangled:
            raise FitError(f"{self.model.net.arch} has one latent vector, so scans cannot share a shape code")
        t0 = time.perf_counter()
        starts = list(starts) if starts is not None else [self.start_similarity(tg) for tg in targets]
        if len(starts) != bsz:
            raise FitError(f"{len(starts)} start similarities for {bsz} scans")
        ref = self.reference_np
        ref_n = vertex_normals(ref, self.faces)
        for tg, st in zip(targets, starts):
            tg.orient(st.apply(ref), ref_n @ st.rotation.T)
        centre = self.reference.mean(0)
        dev, f64 = self.device, torch.float64
        r0 = torch.as_tensor(np.stack([st.rotation for st in starts]), dtype=f64, device=dev)
        s0 = np.array([st.scale for st in starts])
        # x = s R (p - c) + t  <=>  t = s0 R0 c + t0 at the start
        tr = torch.as_tensor(np.stack([st.scale * st.rotation @ centre.cpu().numpy() + st.translation
                                       for st in starts]), dtype=f64, device=dev).requires_grad_(True)
        omega = torch.zeros(bsz, 3, dtype=f64, device=dev, requires_grad=True)
        logs = torch.as_tensor(np.log(s0), dtype=f64, device=dev).requires_grad_(s.fit_scale)
        gt = torch.as_tensor(g, device=dev)
        if self.model.disentangled:
            lg = self.model.net.latent_groups()
            es = torch.zeros(n_groups, lg["shape"].stop - lg["shape"].start, device=dev, requires_grad=True)
            ep = torch.zeros(bsz, lg["pose"].stop - lg["pose"].start, device=dev, requires_grad=True)
            code_params = [es, ep]
        else:
            es, ep = torch.zeros(bsz, self.mesh.n_latent, device=dev, requires_grad=True), None
            code_params = [es]
        params = [{"params": code_params, "lr": s.lr_code}, {"params": [omega], "lr": s.lr_rotation},
                  {"params": [tr], "lr": s.lr_translation}]
        if s.fit_scale:
            params.append({"params": [logs], "lr": s.lr_scale})
        opt = torch.optim.Adam(params)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=s.lr_decay ** (1.0 / s.iterations))
        prior = self.mesh.prior

        def place(z: torch.Tensor) -> torch.Tensor:
            rot = rotation_exp_torch(omega) @ r0
            p = self.mesh.decode_vertices(z) - centre
            return torch.exp(logs)[:, None, None] * p @ rot.transpose(1, 2) + tr[:, None, :]

        lm = self._landmark_pairs(targets)
        pairs = None
        for r, dist in enumerate(s.dists):
            w_lan = s.landmark_weights[min(r, len(s.landmark_weights) - 1)] if s.landmark_weights else 0.0
            for k in range(s.round_iterations):
                z = self._codes(es, ep, gt)
                x = place(z)
                if k % s.refresh == 0:
                    pairs = self._pairs(x.detach().cpu().numpy(), targets, dist)
                e = self._data_energy(x, pairs).sum()
                if w_lan > 0 and lm is not None:
                    b, v, q, w = lm
                    d = (x[b, v] - q) * MM_PER_M
                    e = e + w_lan * s.data_weight * self.n_surface * (w * (d * d).sum(-1)).sum()
                if shared:
                    lg = self.model.net.latent_groups()
                    e = e + (prior[lg["shape"]] * es.double() ** 2).sum() + (prior[lg["pose"]] * ep.double() ** 2).sum()
                else:
                    zz = z.double()
                    e = e + (prior * zz * zz).sum()
                opt.zero_grad(set_to_none=True)
                e.backward()
                opt.step()
                sched.step()
        with torch.no_grad():
            z = self._codes(es, ep, gt)
            x = place(z)
            last = self._pairs(x.cpu().numpy(), targets, s.dists[-1])
            rot = rotation_exp_torch(omega) @ r0
            scale = torch.exp(logs)
            trans = tr - scale[:, None] * (rot @ centre)
        seconds = (time.perf_counter() - t0) / bsz
        zn = z.detach().cpu().numpy().astype(np.float32)
        shape = pose = None
        if self.model.disentangled:
            lg = self.model.net.latent_groups()
            shape, pose = zn[:, lg["shape"]], zn[:, lg["pose"]]
        return ScanFitResult(zn, shape, pose, g.astype(np.int64), scale.cpu().numpy(), rot.cpu().numpy(),
                             trans.cpu().numpy(), x.cpu().numpy(), starts, last.overlap,
                             np.full(bsz, s.iterations, np.int64), np.full(bsz, seconds))


@dataclass
class PointDistances:
    """Scan point -> fitted mesh distances. distance_mm : (m,) float64; on_hand : (m,) bool, the closest fitted-mesh
    point lies on a hand part (its nearest corner of the closest face, by barycentric weight, is a hand vertex)."""

    distance_mm: np.ndarray
    on_hand: np.ndarray

    @property
    def pmd_mm(self) -> float:
        """The paper's PMD: mean over the points not on the hands."""
        keep = ~self.on_hand
        return float(self.distance_mm[keep].mean()) if keep.any() else float("nan")

    @property
    def pmd_wh_mm(self) -> float:
        """PMD with the hands: mean over every point."""
        return float(self.distance_mm.mean())

    def summary(self) -> dict[str, float]:
        """pmd_mm, pmd_wh_mm, pmd_median_mm, pmd_p95_mm (median and 95th percentile without the hands)."""
        keep = self.distance_mm[~self.on_hand]
        med, p95 = (np.median(keep), np.percentile(keep, 95)) if len(keep) else (np.nan, np.nan)
        return {"pmd_mm": self.pmd_mm, "pmd_wh_mm": self.pmd_wh_mm, "pmd_median_mm": float(med),
                "pmd_p95_mm": float(p95)}


def point_to_mesh_mm(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, part_labels: np.ndarray,
                     part_names: Sequence[str], hand_parts: Sequence[str] | None = None) -> PointDistances:
    """PMD pieces: points (m, 3) metres -> their exact distances (mm) to the mesh (vertices (n, 3) metres, faces
    (k, 3)) and whether each closest point is on a hand. part_labels : (n,) int part of each vertex, part_names the
    names; hand_parts : the hand part names (default ``hand_L``, ``hand_R``)."""
    from bodydata.mesh.closest import closest_points
    from bodydata.registration.register import HAND_PARTS

    names = list(part_names)
    hands = [names.index(h) for h in (HAND_PARTS if hand_parts is None else hand_parts) if h in names]
    d, face, bary, _ = closest_points(points, vertices, faces)
    corner = np.asarray(faces, np.int64)[face, np.argmax(bary, 1)]
    on_hand = np.isin(np.asarray(part_labels)[corner], hands)
    return PointDistances(MM_PER_M * d, on_hand)


def fit_scans_once(model: BodyEmbedding, targets: Sequence[ScanTarget], groups: Sequence[int] | None = None,
                   settings: ScanFitSettings = ScanFitSettings(), start: StartFn | None = None) -> ScanFitResult:
    """One call: :class:`ScanFitter` (model, settings, start) fitted to ``targets`` (see :meth:`ScanFitter.fit`)."""
    return ScanFitter(model, settings, start).fit(targets, groups)

