"""Fitting anny to a body of unknown connectivity, units and orientation (mesh or point cloud), coarse to fine.

Energy, per body hypothesis, with lengths in centimetres of the target's metric frame (so a residual of 1 is
1 cm and the prior weights read against it)::

    E = rho(model -> target) + rho(target -> model) + w_lim E_lim + w_pose |a / 90 deg|^2 + w_phen |logit(phen)|^2

* ``model -> target``: every model vertex to its nearest target point, ``target -> model``: every used target
  point (a fixed-seed subsample of ``n_points``) to its nearest model vertex; both robust (Geman-McClure with
  scale ``gate``: a pair ``gate`` apart counts half, far pairs almost nothing, so scan clutter, a floor patch or
  a missing region do not pull) model -> target, pseudo-Huber (linear far away) target -> model, so that a target
  limb the model has not reached keeps pulling it (with Geman-McClure both ways a raised arm left unfitted
  costs nothing once it is a gate away); the registration (Eq. 14) then follows the surface;
* ``E_lim``: squared excess of each anatomical angle beyond the pose library's joint limits, per 10 degrees
  (:func:`bodydata.bodyfit.rig.limit_penalty`); a weak pull of every angle to the A-pose and of the
  phenotype to the average keeps unobserved DOFs (a hidden wrist, a twist a round limb cannot show) put.

Stages (:class:`BodyFitSettings`): (1a) units from the target's size; 6 x ``azimuths`` orientation hypotheses
(each signed principal axis as up, facings evenly spaced about it: :mod:`bodydata.bodyfit.orient`), each a rigid
+ scale fit of the average body in a few key poses, coarse topology, on subsets of the points; (1b) the
``orientations`` best orientations whose fitted rotations are ``min_separation`` apart, each with its facing twin,
x every key pose of the library and of :mod:`bodydata.bodyfit.scan_poses`, rigid + scale; (2a) the pool: each kept
orientation's ``pool_per_orientation`` best key poses and the ``pool_distinct`` best hypotheses with distinct key
poses, every parameter free, a short run on subsets of the points; (2b) the ``keep`` best of the pool and, for each
of the two best, the best facing the other way, every parameter, coarse topology; (3) the best of them (with its
facing twin while close) on the output topology, closest points fixed per round, L-BFGS.
Stages 1-2 are each one Adam run over a batch of hypotheses (each hypothesis its own parameters; Adam is per
element, so the batch does not couple them).

A fit whose final two-sided mean distance exceeds ``max_distance_mm`` (metric frame) fails: the target is not
one body that anny can express (a partial scan with no legs, two bodies, not a body).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial import cKDTree

from bodydata.bodyfit.body import ANGLE_UNIT, CM, POSE_PRIOR_UNIT, AnnyBody, BodyParams
from bodydata.bodyfit.orient import TYPICAL_EXTENT_M, Placement, detect_units, orientation_hypotheses
from bodydata.bodyfit.rig import limit_penalty
from bodydata.bodyfit.scan_poses import scan_pose_vectors
from bodydata.errors import BodydataError
from bodydata.features.polar import rotation_exp_torch
from bodydata.generator.poses import KEY_POSES, POSE_NAMES, key_pose_vector
from bodydata.manifest.source_rows import UNITS_NORMALIZED
from bodydata.manifest.status import STATUS_DONE, STATUS_FAILED
from bodydata.mesh.normals import vertex_normals, vertex_normals_torch

__all__ = ["BodyFit", "BodyFitError", "BodyFitSettings", "BodyFitter", "fit_body"]

_K = 6  # nearest neighbours searched for one whose normal agrees


class BodyFitError(BodydataError, ValueError):
    """A target that cannot be fitted at all (too few points, NaN coordinates)."""


@dataclass(frozen=True)
class BodyFitSettings:
    """Stages and weights of the fit (module docstring). Distances in metres of the target's metric frame.

    n_points : target points used (fixed-seed subsample); azimuths : facings tried about each up axis (even);
    start_poses : key pose names of :mod:`bodydata.generator.poses` tried in every orientation of stage 1a;
    orientations : orientations carried from 1a into 1b (each with its facing twin), their fitted rotations at least
    ``min_separation`` degrees apart; pool_per_orientation, pool_distinct, pool_iterations, pool_points : the pool
    of stage 2a (key poses per kept orientation, best hypotheses with distinct key poses over all kept orientations,
    Adam steps, model vertices and target points used); keep : hypotheses carried from the pool into 2b;
    twin_margin, runner_margin : the best facing the other way and the runner-up also get stage 3 while their 2b
    scores are within these factors of the best; orient_model_points, orient_target_points : model vertices and
    target points used in stage 1; lbfgs_iterations : L-BFGS iterations per round of stage 3; iterations : Adam
    steps of stages 1a and 1b, Adam steps of 2b, L-BFGS rounds of 3; gates : Geman-McClure scales of stage 1, 2, 3;
    lr : Adam step (on angles in units of 30 degrees, rotation vector, translation in metres, log-scale, phenotype
    logits); limit_weight, pose_weight, phenotype_weight, scale_weight : prior weights (scale: per 5 % off the
    detected unit, metric targets only); coarse_topology, topology : anny topologies of stages 1-2 and of stage 3
    (the output); max_distance_mm : fail above this final two-sided mean distance; seed : of the target subsample
    and the model's vertex shuffle.
    """

    n_points: int = 3000
    keep: int = 8
    orientations: int = 3
    azimuths: int = 8
    min_separation: float = 45.0
    pool_per_orientation: int = 4
    pool_distinct: int = 5
    pool_iterations: int = 30
    pool_points: tuple[int, int] = (400, 1000)
    twin_margin: float = 1.5
    runner_margin: float = 1.15
    start_poses: tuple[str, ...] = ("standing_relaxed", "t_pose", "arms_raised", "sitting")
    iterations: tuple[int, int, int] = (20, 40, 3)
    lbfgs_iterations: int = 20
    orient_model_points: int = 300
    orient_target_points: int = 500
    gates: tuple[float, float, float] = (0.20, 0.10, 0.03)
    lr: float = 0.05
    limit_weight: float = 1.0
    pose_weight: float = 0.02
    phenotype_weight: float = 0.01
    scale_weight: float = 1.0
    coarse_topology: str = "notoes_collapse10pc"
    topology: str = "notoes"
    max_distance_mm: float = 40.0
    seed: int = 0


@dataclass
class BodyFit:
    """One fitted body.

    vertices : (n, 3) float64 anny (``topology``) in the target's frame and units; phenotype : (6,) float64;
    angles : (D,) float64 degrees; rotation : (3, 3), translation : (3,) (target units), scale : float with
    ``vertices = scale * R posed + t`` for anny's posed body ``posed`` (metres); units : detected unit;
    distance_mm : final two-sided mean distance (metric frame, mm); hypothesis : "<orientation>/<start pose>";
    seconds; status 'done' | 'failed'; reason.
    """

    vertices: np.ndarray
    phenotype: np.ndarray
    angles: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    scale: float
    units: str
    topology: str
    distance_mm: float
    hypothesis: str
    seconds: float
    status: str = STATUS_DONE
    reason: str = ""
    history: list = field(default_factory=list)


class _Target:
    """The target in its metric frame (centred, metres): used points (p, 3), their unit normals (p, 3) (the mesh's
    vertex normals, or estimated from the points of a point cloud), their KD-tree, the placement."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray | None, n_points: int, seed: int,
                 normalised: bool = False) -> None:
        v = np.asarray(vertices, np.float64)
        if v.ndim != 2 or v.shape[1] != 3 or len(v) < 100:
            raise BodyFitError(f"a body fit needs at least 100 points (m, 3), got shape {v.shape}")
        if not np.all(np.isfinite(v)):
            raise BodyFitError("the target has NaN or infinite coordinates")
        self.placement: Placement = detect_units(v, normalised)
        metric = (v - self.placement.centre) * self.placement.to_metres
        normals = vertex_normals(v, faces) if faces is not None and len(faces) else None
        if len(metric) > n_points:
            pick = np.random.default_rng(seed).choice(len(metric), n_points, replace=False)
            metric = metric[pick]
            normals = normals[pick] if normals is not None else None
        if normals is None:
            from bodydata.mesh.pointcloud import estimate_normals

            normals = estimate_normals(metric, k=12)
        self.points = metric
        self.normals = normals
        self.tree = cKDTree(metric)
        self._tensors: dict = {}

    def points_t(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """(p, 3) the used points as a tensor, converted once per fit (not at every step)."""
        key = (dtype, device)
        if key not in self._tensors:
            self._tensors[key] = torch.as_tensor(self.points, dtype=dtype, device=device)
        return self._tensors[key]


class BodyFitter:
    """Builds anny on the coarse and output topologies once; :meth:`fit` fits one target at a time."""

    def __init__(self, settings: BodyFitSettings = BodyFitSettings(), device: str | torch.device = "cpu") -> None:
        unknown = [p for p in settings.start_poses if p not in KEY_POSES]
        if unknown:
            raise BodyFitError(f"unknown start poses {unknown}")
        if settings.azimuths < 2 or settings.azimuths % 2:
            raise BodyFitError(f"azimuths must be an even number >= 2, got {settings.azimuths}")
        if min(settings.orientations, settings.pool_per_orientation, settings.keep, *settings.pool_points) < 1:
            raise BodyFitError("orientations, pool_per_orientation, keep and pool_points must each be at least 1")
        if settings.pool_distinct < 0 or settings.pool_iterations < 0:
            raise BodyFitError("pool_distinct and pool_iterations must be >= 0")
        if not 0.0 <= settings.min_separation < 180.0:
            raise BodyFitError(f"min_separation must be in [0, 180) degrees, got {settings.min_separation}")
        self.settings = settings
        self.coarse = AnnyBody(settings.coarse_topology, device)
        self.fine = self.coarse if settings.topology == settings.coarse_topology else AnnyBody(settings.topology, device)
        self.dtype, self.device = self.coarse.dtype, self.coarse.device
        extra = scan_pose_vectors()
        self._pose_names = list(POSE_NAMES) + list(extra)
        self._pose_angles = np.stack([key_pose_vector(p) for p in POSE_NAMES] + list(extra.values()))  # (L, D) deg
        self._start_index = np.array([self._pose_names.index(p) for p in settings.start_poses])
        with torch.no_grad():
            p = self.coarse.params(len(self._pose_angles), angles=self._pose_angles)
            self._pose_bodies = self.coarse(p).posed  # (L, n, 3) the average body in each key pose, metres
            self._pose_normals = vertex_normals_torch(self._pose_bodies, self.coarse.faces_t)  # (L, n, 3)
        self._perms: dict[int, np.ndarray] = {}
        self._trees: dict[tuple[int, int], cKDTree] = {}

    # ------------------------------------------------------------------ energy
    def _energy(self, x: torch.Tensor, target: _Target, gate: float, faces: torch.Tensor,
                n_model: int | None = None, n_target: int | None = None,
                backward: tuple[np.ndarray, np.ndarray] | None = None,
                normals: torch.Tensor | None = None) -> tuple[torch.Tensor, np.ndarray]:
        """x : (B, n, 3) model vertices (metric frame, metres) -> (B,) robust two-sided energy and (B,) two-sided
        mean distance (metres, each direction truncated at 3 gates: the hypothesis score).

        Pairs are nearest neighbours whose normals agree (positive dot product; among the ``_K`` nearest): a hip
        must not sit on the inside of the arm that hangs beside it, which plain nearest points allow (seen on
        FAUST: the pelvis shifted 10 cm sideways, a hand at the crotch). A point with no agreeing neighbour does not
        count. model -> target is point-to-point (the target's points are dense); target -> model is
        point-to-plane on the model's vertex normals plus a tenth of point-to-point (the coarse model's vertices
        are centimetres apart: point-to-vertex would floor every score). ``n_model``, ``n_target``: only the
        first so many model vertices (of a fixed shuffle) and target points; ``backward``: (B, P) int64 paired
        model vertex (of the first ``n_model``) and (B, P) bool agreed, of each used target point, when the caller
        knows them (:meth:`_nearest_rigid`); ``normals`` (B, n, 3): the model's
        vertex normals when the caller knows them (rigid stages: the key-pose bodies' normals, turned)."""
        if normals is None:
            normals = vertex_normals_torch(x, faces)
        if n_model is not None:
            keep = torch.as_tensor(self._shuffle(x.shape[1])[:n_model], device=x.device)
            x, normals = x[:, keep], normals[:, keep]
        n_t = len(target.points) if n_target is None else n_target
        tp, tn = target.points[:n_t], target.normals[:n_t]
        xd, nd = x.detach().cpu().numpy(), normals.detach().cpu().numpy()
        dev = x.device
        b, n = x.shape[:2]
        # model -> target for every hypothesis in one query of the target's tree
        i_fwd, ok_fwd = _nearest_agreeing(target.tree, xd.reshape(-1, 3), nd.reshape(-1, 3), target.normals)
        full = target.points_t(x.dtype, dev)
        r_fwd = ((x.reshape(-1, 3) - full[torch.as_tensor(i_fwd, device=dev)]) * CM).pow(2).sum(-1).view(b, n)
        w_fwd = torch.as_tensor(ok_fwd.reshape(b, n), dtype=x.dtype, device=dev)
        d_fwd = np.where(ok_fwd, np.linalg.norm(xd.reshape(-1, 3) - target.points[i_fwd], axis=1), np.inf).reshape(b, n)
        # target -> model, per hypothesis (a tree of the model's vertices each) unless the caller knows the pairs
        if backward is None:
            pairs = [_nearest_agreeing(cKDTree(xd[k]), tp, tn, nd[k]) for k in range(b)]
            backward = np.stack([q[0] for q in pairs]), np.stack([q[1] for q in pairs])
        i_bwd, ok_bwd = backward
        rows = torch.arange(b, device=dev)[:, None]
        it = torch.as_tensor(i_bwd, device=dev)
        pts = full[:n_t]
        diff = pts[None] - x[rows, it]  # (B, P, 3)
        plane = (diff * normals[rows, it]).sum(-1).pow(2)
        r_bwd = (plane + 0.1 * diff.pow(2).sum(-1)) * CM**2
        w_bwd = torch.as_tensor(ok_bwd, dtype=x.dtype, device=dev)
        d_bwd = np.where(ok_bwd, np.sqrt(plane.detach().cpu().numpy()), np.inf)
        s2 = (gate * CM) ** 2
        energy = ((w_fwd * _geman_mcclure(r_fwd, s2)).sum(1) / n
                  + (w_bwd * _pseudo_huber(r_bwd, s2)).sum(1) / len(tp))
        cap = 3.0 * gate
        score = 0.5 * (np.minimum(d_fwd, cap).mean(1) + np.minimum(d_bwd, cap).mean(1))
        return energy, score

    def _shuffle(self, n: int) -> np.ndarray:
        if n not in self._perms:
            self._perms[n] = np.random.default_rng(self.settings.seed).permutation(n)
        return self._perms[n]

    def _priors(self, state: dict) -> torch.Tensor:
        """(B,) prior energy: joint limits, pull to the A-pose and the average phenotype, and, when the target's
        unit is known, of the scale to that unit (else anny's height and the scale trade freely)."""
        s = self.settings
        rig = self.coarse.rig
        angles = ANGLE_UNIT * state["a"]
        out = (s.limit_weight * limit_penalty(angles, rig.lower, rig.upper)
               + s.pose_weight * (angles / POSE_PRIOR_UNIT).pow(2).sum(-1)
               + s.phenotype_weight * state["logit"].pow(2).sum(-1))
        if self._metric:
            out = out + s.scale_weight * (state["log_s"] / 0.05).pow(2)
        return out

    def _vertices(self, body: AnnyBody | None, state: dict, fixed: torch.Tensor | None = None) -> torch.Tensor:
        rot = rotation_exp_torch(state["omega"]) @ state["r0"]
        scale = torch.exp(state["log_s"])
        if fixed is not None:  # rigid stage: each hypothesis's own pre-posed body (B, n, 3)
            return scale[:, None, None] * fixed @ rot.transpose(1, 2) + state["t"][:, None]
        p = BodyParams(torch.sigmoid(state["logit"]), ANGLE_UNIT * state["a"], rot, state["t"], scale)
        return body(p).vertices

    # ------------------------------------------------------------------ stages
    def _adam(self, body: AnnyBody | None, target: _Target, state: dict, iters: int, gate: float, history: list,
              stage: str, fixed: torch.Tensor | None = None, n_model: int | None = None,
              n_target: int | None = None, pose_ids: np.ndarray | None = None) -> np.ndarray:
        """Adam over a batch of hypotheses (``fixed`` given: rigid + scale only); returns the (B,) final scores."""
        lr = self.settings.lr
        groups = [("omega", lr), ("t", 0.4 * lr), ("log_s", 0.4 * lr)]
        if fixed is None:
            groups += [("a", lr), ("logit", 2 * lr)]
        for k, _ in groups:
            state[k] = state[k].detach().requires_grad_(True)
        opt = torch.optim.Adam([{"params": [state[k]], "lr": r} for k, r in groups])
        if pose_ids is not None:  # rigid bodies: only the used vertices are placed (and carry gradients)
            keep = torch.as_tensor(self._shuffle(fixed.shape[1])[:n_model], device=fixed.device)
            fixed, pose_normals = fixed[:, keep], self._pose_normals[torch.as_tensor(pose_ids)][:, keep]
        for it in range(iters + 1):
            x = self._vertices(body, state, fixed)
            pairs, nrm = None, None
            if pose_ids is not None:  # a rigid body's normals only turn with it
                rot = rotation_exp_torch(state["omega"]) @ state["r0"]
                nrm = pose_normals @ rot.transpose(1, 2)
                pairs = self._nearest_rigid(state, pose_ids, target, n_model, n_target, nrm)
            e, scores = self._energy(x, target, gate, (body or self.coarse).faces_t,
                                     None if pose_ids is not None else n_model, n_target, pairs, nrm)
            if it == iters:
                break
            total = e if fixed is not None else e + self._priors(state)
            opt.zero_grad()
            total.sum().backward()
            opt.step()
        history.append((stage, float(scores.min()) * 1000.0, time.perf_counter()))
        return scores

    def _lbfgs(self, body: AnnyBody, target: _Target, state: dict, rounds: int, gate: float, history: list,
               stage: str) -> np.ndarray:
        """One hypothesis: ``rounds`` rounds of (closest points fixed, L-BFGS on every parameter); returns its score."""
        keys = ["omega", "t", "log_s", "a", "logit"]
        for k in keys:
            state[k] = state[k].detach().requires_grad_(True)
        score = np.array([np.inf])
        for _ in range(rounds):
            with torch.no_grad():
                x0 = self._vertices(body, state)
            xd = x0[0].cpu().numpy()
            nd = vertex_normals(xd, body.faces)
            i_fwd, ok_fwd = _nearest_agreeing(target.tree, xd, nd, target.normals)
            i_bwd, ok_bwd = _nearest_agreeing(cKDTree(xd), target.points, target.normals, nd)
            pts = target.points_t(x0.dtype, x0.device)
            q_fwd = pts[torch.as_tensor(i_fwd, device=x0.device)]
            i_bwd_t = torch.as_tensor(i_bwd, device=x0.device)
            w_fwd = torch.as_tensor(ok_fwd, dtype=x0.dtype, device=x0.device)
            w_bwd = torch.as_tensor(ok_bwd, dtype=x0.dtype, device=x0.device)
            s2 = (gate * CM) ** 2
            opt = torch.optim.LBFGS([state[k] for k in keys], lr=1.0, max_iter=self.settings.lbfgs_iterations,
                                    line_search_fn="strong_wolfe")

            def closure():
                opt.zero_grad()
                x = self._vertices(body, state)
                nrm = vertex_normals_torch(x, body.faces_t)[0]
                x = x[0]
                r_fwd = ((x - q_fwd) * CM).pow(2).sum(-1)
                diff = pts - x[i_bwd_t]
                r_bwd = ((diff * nrm[i_bwd_t]).sum(-1).pow(2) + 0.1 * diff.pow(2).sum(-1)) * CM**2
                e = ((w_fwd * _geman_mcclure(r_fwd, s2)).sum() / len(x)
                     + (w_bwd * _pseudo_huber(r_bwd, s2)).sum() / len(pts))
                total = e + self._priors(state).sum()
                total.backward()
                return total

            opt.step(closure)
        with torch.no_grad():
            _, score = self._energy(self._vertices(body, state), target, gate, body.faces_t)
        history.append((stage, float(score[0]) * 1000.0, time.perf_counter()))
        return score

    def _nearest_rigid(self, state: dict, pose_ids: np.ndarray, target: _Target, n_model: int, n_target: int,
                       normals: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(B, P) paired model vertex (among the first ``n_model`` of the shuffle) and (B, P) bool agreed, of each used
        target point, for rigidly placed key-pose bodies with the normals ``normals`` (B, n_model, 3) of those
        vertices: the target points are taken into each body's own frame and looked up in that pose's KD-tree,
        built once (a tree per hypothesis and step was the fit's main cost), one query for all hypotheses of a
        pose."""
        with torch.no_grad():
            rot = (rotation_exp_torch(state["omega"]) @ state["r0"]).cpu().numpy()
            t = state["t"].cpu().numpy()
            scale = np.exp(state["log_s"].cpu().numpy())
            nd = normals.cpu().numpy()
        tp, tn = target.points[:n_target], target.normals[:n_target]
        b, p = len(pose_ids), len(tp)
        local = np.einsum("bpi,bij->bpj", tp[None] - t[:, None], rot) / scale[:, None, None]  # (B, P, 3)
        idx, ok = np.empty((b, p), np.int64), np.empty((b, p), bool)
        for pid in np.unique(pose_ids):
            hyp = np.flatnonzero(pose_ids == pid)
            owner = np.repeat(np.arange(len(hyp)), p)
            i, o = _nearest_agreeing(self._pose_tree(int(pid), n_model), local[hyp].reshape(-1, 3),
                                     np.tile(tn, (len(hyp), 1)), nd[hyp], owner)
            idx[hyp], ok[hyp] = i.reshape(-1, p), o.reshape(-1, p)
        return idx, ok

    def _pose_tree(self, pid: int, n_model: int) -> cKDTree:
        key = (pid, n_model)
        if key not in self._trees:
            keep = self._shuffle(self._pose_bodies.shape[1])[:n_model]
            self._trees[key] = cKDTree(self._pose_bodies[pid, keep].cpu().numpy())
        return self._trees[key]

    def _rigid_state(self, rotations: np.ndarray, poses: np.ndarray, log_s0: float) -> dict:
        """Start state of hypotheses (rotation (H, 3, 3), key pose index (H,)): the posed body's centroid on the
        target's, scale from the longest extents, average phenotype."""
        dt = dict(dtype=self.dtype, device=self.device)
        r0 = torch.as_tensor(rotations, **dt)
        h = len(poses)
        return {
            "r0": r0,
            "omega": torch.zeros(h, 3, **dt),
            "t": -float(np.exp(log_s0)) * torch.einsum("bij,bj->bi", r0, self._pose_bodies[poses].mean(1)),
            "log_s": torch.full((h,), log_s0, **dt),
            "a": torch.as_tensor(self._pose_angles[poses] / ANGLE_UNIT, **dt),
            "logit": torch.zeros(h, 6, **dt),
        }

    def _distinct_orientations(self, state: dict, per_o: np.ndarray) -> list[int]:
        """Up to ``orientations`` of stage 1a's orientations, best first (per_o : (O, S) scores of each orientation's
        start poses), whose rigidly fitted rotations (at each one's best start pose) are at least ``min_separation``
        degrees from those of every better kept one and of its facing twin (which comes along anyway): neighbouring
        azimuths settle in the same place, and keeping both would waste a slot the right facing may need."""
        n_s = per_o.shape[1]
        with torch.no_grad():
            rot = (rotation_exp_torch(state["omega"]) @ state["r0"]).cpu().numpy()
        fitted = rot[np.arange(len(per_o)) * n_s + per_o.argmin(1)]  # (O, 3, 3)
        # cos of the angle of R_a^T R_b from its trace; a hair of tolerance so that unfitted neighbours exactly
        # min_separation apart count as apart
        cos_max = np.cos(np.radians(self.settings.min_separation)) + 1e-9
        kept: list[int] = []
        for o in np.argsort(per_o.min(1)):
            taken = [k for q in kept for k in (q, q ^ 1)]
            if all((np.trace(fitted[k].T @ fitted[o]) - 1.0) / 2.0 <= cos_max for k in taken):
                kept.append(int(o))
            if len(kept) == self.settings.orientations:
                break
        return kept

    @staticmethod
    def _distinct_poses(scores: np.ndarray, poses: np.ndarray, n: int) -> np.ndarray:
        """(<= n,) int64 indices of the best hypotheses (scores (H,)) whose key poses (poses (H,)) differ: a rigid fit
        ranks a compact pose (arms crossed) above the right one in many orientations at once (seen on FAUST: the
        four best were arms_crossed in four orientations)."""
        best: list[int] = []
        seen: set[int] = set()
        for k in np.argsort(scores):
            if len(best) == n:
                break
            if int(poses[k]) not in seen:
                best.append(int(k))
                seen.add(int(poses[k]))
        return np.array(best, np.int64)

    @staticmethod
    def _take(state: dict, idx: np.ndarray) -> dict:
        ii = torch.as_tensor(idx, dtype=torch.long)
        return {k: v.detach()[ii].clone() for k, v in state.items()}

    # ------------------------------------------------------------------ public
    def fit(self, vertices: np.ndarray, faces: np.ndarray | None = None, normalised: bool = False) -> BodyFit:
        """Fit anny to a target, vertices : (m, 3) float64 (a mesh's vertices or a point cloud), faces : (k, 3) int64
        or None (a point cloud: normals estimated from the points), any units and orientation; ``normalised``: the
        target was rescaled to no physical unit (its scale is then free, not held to a detected unit). Never raises
        for a bad fit: it comes back failed with the reason; raises :class:`BodyFitError` for unusable input (too few
        points, NaN)."""
        t0 = time.perf_counter()
        s = self.settings
        target = _Target(vertices, faces, s.n_points, s.seed, normalised)
        pl = target.placement
        history: list = []
        hyp = orientation_hypotheses(pl.axes, s.azimuths)
        dt = dict(dtype=self.dtype, device=self.device)
        self._metric = pl.units != UNITS_NORMALIZED
        # a metric target starts at its own size; a normalised one at the average body's
        log_s0 = 0.0 if self._metric else float(np.log(pl.extents[0] * pl.to_metres / TYPICAL_EXTENT_M))
        # (1a) every orientation x the few start poses, rigid + scale, on subsets of the points
        n_o, n_s = len(hyp), len(s.start_poses)
        o_idx = np.repeat(np.arange(n_o), n_s)
        p_idx = np.tile(self._start_index, n_o)
        state = self._rigid_state(hyp[o_idx], p_idx, log_s0)
        scores = self._adam(None, target, state, s.iterations[0], s.gates[0], history, "orient",
                            fixed=self._pose_bodies[p_idx], n_model=s.orient_model_points,
                            n_target=s.orient_target_points, pose_ids=p_idx)
        per_o = scores.reshape(n_o, n_s)
        ranked = self._distinct_orientations(state, per_o)
        # each kept orientation also facing the other way (same up axis): a body seen from behind fits a rigid
        # start almost as well as from the front, and only the posed fit tells them apart
        kept_o = list(dict.fromkeys([int(o) for r in ranked for o in (r, r ^ 1)]))
        # (1b) the kept orientations x every key pose of the library, rigid + scale, from (1a)'s best start
        n_l = len(self._pose_bodies)
        o2 = np.repeat(kept_o, n_l)
        p2 = np.tile(np.arange(n_l), len(kept_o))
        src = np.array([o * n_s + int(np.argmin(per_o[o])) for o in kept_o]).repeat(n_l)
        state = {k: v.detach()[torch.as_tensor(src)].clone() for k, v in state.items()}
        state["a"] = torch.as_tensor(self._pose_angles[p2] / ANGLE_UNIT, **dt)
        scores = self._adam(None, target, state, s.iterations[0], s.gates[0], history, "poses",
                            fixed=self._pose_bodies[p2], n_model=s.orient_model_points,
                            n_target=s.orient_target_points, pose_ids=p2)
        # (2a) the pool, every parameter free, a short run on subsets of the points: each kept orientation's best few
        # key poses, and the rigid ranking's own pick (the best hypotheses with distinct key poses over all kept
        # orientations). Rigid scores of key-posed bodies rank the right orientation 5th-12th of 96-192 on FAUST's
        # harder poses; a short posed fit ranks it first or near (the rigid pick alone lost the right facing on 7 of
        # 30 FAUST registrations, the per-orientation pool alone an arms-forward pose on 1)
        pool = [np.flatnonzero(o2 == o)[np.argsort(scores[o2 == o])][: s.pool_per_orientation] for o in kept_o]
        pool = np.array(list(dict.fromkeys(np.concatenate(pool + [self._distinct_poses(scores, p2, s.pool_distinct)]))))
        state, o2, p2 = self._take(state, pool), o2[pool], p2[pool]
        scores = self._adam(self.coarse, target, state, s.pool_iterations, s.gates[1], history, "pool",
                            n_model=s.pool_points[0], n_target=s.pool_points[1])
        # (2b) the ``keep`` best, and for each of the two best the best hypothesis facing the other way: a body seen
        # from behind fits almost as well as from the front until the details count
        order = np.argsort(scores)
        best = [int(k) for k in order[: s.keep]]
        for k in order[:2]:
            other = np.flatnonzero(o2 == (o2[k] ^ 1))
            best += [int(other[np.argmin(scores[other])])] if len(other) else []
        best = np.array(list(dict.fromkeys(best)))
        labels = [f"{int(o2[k])}/{self._pose_names[int(p2[k])]}" for k in best]
        o_best = o2[best]
        state = self._take(state, best)
        scores = self._adam(self.coarse, target, state, s.iterations[1], s.gates[1], history, "pose")
        # (3) the best, alone on the output topology, closest points fixed per round, L-BFGS; with it the runner-up
        # while within ``runner_margin`` (coarse scores misrank near-equal poses: on 3 of 29 FAUST registrations the
        # refined runner-up ended 0.5-1.3 mm closer) and the best facing the other way while within ``twin_margin``
        # (far behind, it never won in the anny tests)
        by_score = np.argsort(scores)
        first = int(by_score[0])
        flipped = [int(k) for k in by_score if o_best[k] == (o_best[first] ^ 1)]
        runner = [int(k) for k in by_score[1:] if k not in flipped[:1]][:1]
        order = ([first] + [k for k in runner if scores[k] <= s.runner_margin * scores[first]]
                 + [k for k in flipped[:1] if scores[k] <= s.twin_margin * scores[first]])
        history.append(("pose-scores", [round(float(x) * 1000, 1) for x in scores], time.perf_counter()))
        finals = []
        for k in order:
            one = self._take(state, np.array([k]))
            score = self._lbfgs(self.fine, target, one, s.iterations[2], s.gates[2], history, f"fine:{labels[k]}")
            finals.append((float(score[0]), int(k), one))
        score0, k, state = min(finals, key=lambda f: f[0])
        scores = np.array([score0])
        with torch.no_grad():
            rot = (rotation_exp_torch(state["omega"]) @ state["r0"])[0].cpu().numpy()
            p = self.fine.params(1)
            p.phenotype, p.angles = torch.sigmoid(state["logit"]), ANGLE_UNIT * state["a"]
            posed = self.fine(p).posed[0].cpu().numpy()
            phenotype = p.phenotype[0].cpu().numpy()
            angles = p.angles[0].cpu().numpy()
            scale_m = float(torch.exp(state["log_s"][0]))
            t_m = state["t"][0].cpu().numpy()
        unit_scale = scale_m / pl.to_metres
        translation = pl.centre + t_m / pl.to_metres
        verts = unit_scale * posed @ rot.T + translation
        dist_mm = float(scores[0]) * 1000.0
        fit = BodyFit(verts, phenotype, angles, rot, translation, unit_scale, pl.units, s.topology, dist_mm,
                      labels[k], time.perf_counter() - t0, history=history)
        if not np.isfinite(dist_mm) or dist_mm > s.max_distance_mm:
            fit.status, fit.reason = STATUS_FAILED, (
                f"body fit failed: two-sided mean distance {dist_mm:.1f} mm > {s.max_distance_mm:.0f} mm "
                "(not one whole body anny can express: partial scan, several bodies, not a body)")
        return fit


def _nearest_agreeing(tree: cKDTree, queries: np.ndarray, query_normals: np.ndarray, normals: np.ndarray,
                      owner: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each query point (N, 3) with unit normal (N, 3): the nearest of the tree's points whose normal agrees
    (positive dot product) among its ``_K`` nearest, as (N,) int64 index (the nearest when none agrees) and (N,) bool
    whether one agreed. normals : (n, 3) of the tree's points, or (H, n, 3) with owner (N,) int: query i reads
    normals[owner[i]] (one tree, several hypotheses' normals).

    The same answer as a ``_K``-nearest query and :func:`_agreeing` (ties of equal distance aside), but the ``_K``
    nearest are only searched for queries whose nearest point disagrees: 20-40 % of them in the fit's stages (anny
    body, wrong orientations included), and a 1-nearest query costs about 0.6 of a 6-nearest one."""
    _, first = tree.query(queries, k=1)
    near = normals[first] if owner is None else normals[owner, first]
    idx, ok = first, np.einsum("nd,nd->n", near, query_normals) > 0.0
    rest = np.flatnonzero(~ok)
    if len(rest):
        _, cand = tree.query(queries[rest], k=_K)
        cn = normals[cand] if owner is None else normals[owner[rest, None], cand]
        idx[rest], ok[rest] = _agreeing(cand, cn, query_normals[rest])
    return idx, ok


def _agreeing(cand: np.ndarray, cand_normals: np.ndarray, query_normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest candidate whose normal agrees with the query's: cand (N, k) int nearest first, cand_normals (N, k, 3),
    query_normals (N, 3) -> (N,) chosen index (the nearest when none agrees) and (N,) bool whether one agreed."""
    agree = np.einsum("nkd,nd->nk", cand_normals, query_normals) > 0.0
    first = agree.argmax(1)
    return cand[np.arange(len(cand)), first], agree.any(1)


def _geman_mcclure(r2: torch.Tensor, s2: float) -> torch.Tensor:
    """Squared residuals r2 -> s2 r2 / (r2 + s2): r2 near 0, s2 / 2 at r2 = s2, never above s2 (a far pair stops
    pulling: holes of a scan, parts of the model no scanner saw)."""
    return s2 * r2 / (r2 + s2)


def _pseudo_huber(r2: torch.Tensor, s2: float) -> torch.Tensor:
    """Squared residuals r2 -> 2 s2 (sqrt(1 + r2 / s2) - 1): r2 near 0, linear in the distance far away, so a
    target region the model has not reached (an arm up where the model's is down) keeps pulling it."""
    return 2.0 * s2 * (torch.sqrt(1.0 + r2 / s2) - 1.0)


def fit_body(vertices: np.ndarray, faces: np.ndarray | None = None, settings: BodyFitSettings = BodyFitSettings(),
             device: str | torch.device = "cpu", normalised: bool = False) -> BodyFit:
    """Fit anny to one target (a one-call :class:`BodyFitter`)."""
    return BodyFitter(settings, device).fit(vertices, faces, normalised)
