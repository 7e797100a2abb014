"""Fitting anny (phenotype, joint angles, similarity) to meshes already in an anny topology (known vertex correspondence), batched.

The ``anny`` and ``anny-lite`` templates are anny's ``notoes`` / ``notoes_collapse10pc`` topologies in anny's
vertex order, so a mesh converted to one of them corresponds vertex for vertex with :class:`AnnyBody` of that
topology: no nearest-neighbour search, no orientation hypotheses. Least squares over the meshes (lengths in
centimetres so a residual of 1 is 1 cm and the prior weights read against it)::

    E = sum_meshes mean_i |x_i(params) - y_i|^2  +  w_lim E_lim(angles)  +  w_pose |angles / 90 deg|^2

``E_lim`` is :func:`bodydata.bodyfit.rig.limit_penalty`; the weak pose prior only settles what the vertices
cannot tell apart (the pelvis DOFs against the global rotation, both turning the body about the pelvis).

Solver: the residuals are known exactly per vertex, so this is a small nonlinear least-squares problem
(6 phenotype values, shared or per mesh, plus D + 7 pose and similarity values per mesh) solved by
Levenberg-Marquardt on a regular subset of the vertices, with the Jacobian by forward differences; one identity's
rest model serves every pose column, and only the kinematic chain and the subset's skinning run per column
(:meth:`AnnyBody.posed_subset`). Gradient descent (Adam, then L-BFGS) on the same energy stalled 2-5 mm from the
exact body on anny's own meshes in 20 s; Levenberg-Marquardt reaches the exact body when it starts in its basin.
The Jacobian is exact every ``jacobian_every`` accepted steps and carried forward by Broyden's secant update in
between (:func:`bodydata.secant.broyden_update`); a step that fails on an updated Jacobian is retried from an exact
one, and one that gains too little is kept while the decision to stop waits for an exact one. Measured with the
neutral benchmark (anny truth, 20 identities x 4 poses, 12,272 vertices, alone on the 2-core machine; per subject:
the fits, un-posing, fusion and re-articulation's second fit): 4.21 s per subject against 5.64 s with an exact
Jacobian at every step, back to back, the same 0.00 mm mean / 0.02 mm max to the true neutral. On FAUST (docs/
pipeline.md) a single-pose neutral took 4.20 s against 4.58 s, but ten poses sharing one phenotype 11.2 s against
9.9 s; the two end at slightly different fits there (another path to another nearby minimum).

Start: the adult average body at the reference pose placed on each mesh by a similarity (Umeyama/Kabsch), then
each bone's rotation from its skinned vertices (Kabsch) turned into the rig's angles (:meth:`RegisteredFitter._bone_start`).
The first ``pose_iterations`` steps move pose and similarity only: phenotype steps taken while a limb is still
far off settle into a wrong body shape (measured on anny bodies: 0.02 mm instead of 3 mm, 1.2 mm instead of 5.8 mm).
The phenotype stays in [0, 1] (values at a bound with the gradient pointing out are held for the step).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from bodydata.bodyfit.body import ANGLE_UNIT, CM, PHENOTYPE_KEYS, POSE_PRIOR_UNIT, AnnyBody, BodyParams
from bodydata.bodyfit.rig import LIMIT_UNIT, limit_penalty, limit_residuals
from bodydata.errors import BodydataError
from bodydata.features.polar import rotation_exp_torch
from bodydata.mesh.alignment import align, kabsch_rotation
from bodydata.secant import broyden_update, refresh_interval_error

__all__ = ["RegisteredFit", "RegisteredFitError", "RegisteredFitSettings", "RegisteredFitter", "fit_registered"]


class RegisteredFitError(BodydataError, ValueError):
    """Meshes that do not match the body's topology or contain non-finite coordinates."""


@dataclass(frozen=True)
class RegisteredFitSettings:
    """bone_iterations : L-BFGS steps of the per-bone rotation start; pose_iterations : first Levenberg-Marquardt
    steps with the phenotype held at ``phenotype_start``; iterations : all Levenberg-Marquardt steps at most (it
    stops earlier when a step lowers the energy by less than ``tol`` relative); stride : every stride-th vertex
    enters the solver (the reported MED uses all); phenotype_start : (6,) anny phenotype of the start body (an
    adult: anny's age 0.8 is about 40 years; 0.5 would be a child); limit_weight, pose_weight : prior weights
    (module docstring); share_phenotype : one phenotype for every mesh of the batch; fit_scale : a free scale
    per mesh (off for meshes known to be in metres: the body's size is then the phenotype's alone); restart : a
    second solve from the first one's answer with muscle and weight mirrored about 0.5, the lower energy kept
    (the two trade volume for each other along a valley whose halves meet at anny's 0.5 anchor: on anny's own
    meshes the first solve ended 1-3 mm off in 1 of 10 subjects, each time on the wrong side); jacobian_every :
    accepted Levenberg-Marquardt steps per exact Jacobian, Broyden updates in between (1: exact at every step)."""

    bone_iterations: int = 30
    pose_iterations: int = 5
    iterations: int = 30
    tol: float = 1e-3
    stride: int = 8
    phenotype_start: tuple = (0.5, 0.8, 0.5, 0.5, 0.5, 0.5)
    limit_weight: float = 1.0
    pose_weight: float = 1e-3
    share_phenotype: bool = False
    fit_scale: bool = True
    restart: bool = True
    jacobian_every: int = 3


@dataclass
class RegisteredFit:
    """One fitted mesh.

    phenotype : (6,) float64 in [0, 1]; angles : (D,) float64 degrees (the generator's rig); rotation : (3, 3),
    translation : (3,), scale : float with ``vertices = scale * posed @ rotation.T + translation`` (anny's posed
    body ``posed`` in metres); vertices : (n, 3) float64 the fitted body in the mesh's frame; med_mm : mean
    Euclidean vertex distance to the mesh (mm of the mesh's frame, taken as metres); seconds : the batch's time.
    """

    phenotype: np.ndarray
    angles: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    scale: float
    vertices: np.ndarray
    med_mm: float
    seconds: float

    def params(self, body: AnnyBody) -> BodyParams:
        """This fit as a batch-of-one :class:`BodyParams` of ``body``."""
        t = lambda x: torch.as_tensor(np.asarray(x, np.float64)[None], dtype=body.dtype, device=body.device)
        return BodyParams(t(self.phenotype), t(self.angles), t(self.rotation), t(self.translation),
                          t(np.float64(self.scale)))


class RegisteredFitter:
    """Holds one :class:`AnnyBody` and its reference body; :meth:`fit` fits a batch of meshes (B, n, 3)."""

    def __init__(self, body: AnnyBody | str = "notoes", settings: RegisteredFitSettings = RegisteredFitSettings()) -> None:
        self.body = AnnyBody(body) if isinstance(body, str) else body
        self.settings = settings
        bad_every = refresh_interval_error(settings.jacobian_every)
        if bad_every:
            raise RegisteredFitError(bad_every)
        if len(settings.phenotype_start) != 6 or not all(0.0 <= v <= 1.0 for v in settings.phenotype_start):
            raise RegisteredFitError(f"phenotype_start must be 6 values in [0, 1], got {settings.phenotype_start!r}")
        self._phen0 = torch.as_tensor(np.asarray(settings.phenotype_start, np.float64)[None], dtype=self.body.dtype,
                                      device=self.body.device)
        with torch.no_grad():
            p = self.body.params(1)
            p.phenotype = self._phen0
            self._reference = self.body(p).posed[0].cpu().numpy().astype(np.float64)
        self._bone_weights = self.body.dense_weights.cpu().numpy().astype(np.float64)
        n = self.body.n_vertices
        self._ids = torch.arange(0, n, max(int(settings.stride), 1), device=self.body.device)

    def _check(self, meshes: np.ndarray) -> np.ndarray:
        y = np.asarray(meshes, dtype=np.float64)
        if y.ndim == 2:
            y = y[None]
        n = self.body.n_vertices
        if y.ndim != 3 or y.shape[1:] != (n, 3) or len(y) == 0:
            raise RegisteredFitError(f"meshes have shape {y.shape}, expected (B, {n}, 3) in anny's "
                                     f"{self.body.topology} vertex order")
        if not np.isfinite(y).all():
            raise RegisteredFitError("meshes contain NaN or infinite coordinates")
        return y

    def _bone_start(self, local: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Angles (B, D) degrees and a global turn (B, 3) rotation vector from per-bone rotations.

        local : (B, n, 3) the meshes taken into the start body's frame by the similarity start. Each bone's
        rotation from the start body to the mesh (Kabsch of its skinned vertices, weighted by their skinning
        weights) is a direct, well-conditioned target for the rig, so a few L-BFGS steps on
        ``sum_b m_b |R_b(angles) - G_b|_F^2`` (the kinematic chain only, no skinning) reach poses (a 90-degree hip)
        that descent on the vertices reaches only slowly from the reference pose."""
        body, s = self.body, self.settings
        w = self._bone_weights  # (n, n_bones)
        mass = w.sum(0)
        used = mass >= 3.0  # bones that move at least a few vertices' worth
        wn = w[:, used] / mass[used]
        ref = self._reference
        rc = wn.T @ ref  # (k, 3)
        zc = np.einsum("nk,bnd->bkd", wn, local)
        # sum_n w_nk (z_n - zc_k)(r_n - rc_k)^T = sum_n w_nk z_n r_n^T - zc_k rc_k^T (the weights sum to 1): one product
        outer = (local[:, :, :, None] * ref[None, :, None, :]).reshape(len(local), len(ref), 9)
        cov = (wn.T @ outer).reshape(len(local), -1, 3, 3) - zc[..., :, None] * rc[None, :, None, :]
        g = torch.as_tensor(kabsch_rotation(cov), dtype=body.dtype, device=body.device)  # (B, k, 3, 3)
        m = torch.as_tensor(np.sqrt(mass[used]), dtype=body.dtype, device=body.device)
        idx = torch.as_tensor(np.flatnonzero(used), device=body.device)
        b = len(local)
        ang = torch.zeros(b, body.n_dofs, dtype=body.dtype, device=body.device, requires_grad=True)
        rvec = torch.zeros(b, 3, dtype=body.dtype, device=body.device, requires_grad=True)
        if s.bone_iterations <= 0:
            return ang.detach(), rvec.detach()
        with torch.no_grad():
            _, rest_poses = body.rest_model(self._phen0)
            # the rig's transforms start from anny's bind pose, the Kabsch rotations from the reference pose
            # (angles 0), which differ by up to 10 cm at the arms: G_b maps bind -> mesh as G_b R_b(0)
            zero = body.model.get_bone_transforms(body.rig.pose_parameters(ang[:1] * 0.0), rest_poses)[0]
            g = g @ zero[:, idx, :3, :3]
        opt = torch.optim.LBFGS([ang, rvec], lr=1.0, max_iter=s.bone_iterations, history_size=20,
                                line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            angles = ang * ANGLE_UNIT
            transforms, _ = body.model.get_bone_transforms(body.rig.pose_parameters(angles), rest_poses)
            # the global turn left by the similarity start goes to rvec (applied after the rig)
            rot = rotation_exp_torch(rvec)[:, None] @ transforms[:, idx, :3, :3]
            e = (m[None, :, None, None] * (rot - g).pow(2)).sum() + s.limit_weight * limit_penalty(
                angles, body.rig.lower, body.rig.upper).sum()
            e.backward()
            return e

        opt.step(closure)
        return ang.detach() * ANGLE_UNIT, rvec.detach()

    def fit(self, meshes: np.ndarray, share_phenotype: bool | None = None) -> list[RegisteredFit]:
        """Fit every mesh of ``meshes`` (B, n, 3) float64 (or one (n, 3)); one :class:`RegisteredFit` per mesh."""
        t0 = time.perf_counter()
        s = self.settings
        share = s.share_phenotype if share_phenotype is None else bool(share_phenotype)
        y = self._check(meshes)
        b = len(y)
        if not share and b > 1:
            # each mesh its own problem: the solver's damping, accept and stop tests and the restart act on a
            # batch's summed energy, which would tie independent meshes together
            fits = [self.fit(y[i], share_phenotype=False)[0] for i in range(b)]
            seconds = time.perf_counter() - t0
            for f in fits:
                f.seconds = seconds
            return fits
        body, dt, dev = self.body, self.body.dtype, self.body.device
        as_t = lambda x: torch.as_tensor(np.asarray(x), dtype=dt, device=dev)  # noqa: E731
        # metres known (no fit_scale): a rigid start, the body's size left to the phenotype
        start = align(np.broadcast_to(self._reference, y.shape), y, scale=s.fit_scale)
        local = np.einsum("bij,bnj->bni", np.swapaxes(start.rotation, 1, 2),
                          y - start.translation[:, None, :]) / start.scale[:, None, None]
        angles, rvec = self._bone_start(local)
        problem = _Problem(body, as_t(y), self._ids, as_t(start.rotation), as_t(start.translation),
                           as_t(start.scale), s, share)
        x = problem.initial(self._phen0, angles, rvec)
        x = problem.solve(x)
        if s.restart:
            x = problem.restart(x)
        with torch.no_grad():
            p = problem.params(x)
            v = body(p).vertices
            med = (v - problem.target).norm(dim=-1).mean(-1) * 1000.0
        seconds = time.perf_counter() - t0
        np_ = lambda t: t.detach().cpu().numpy().astype(np.float64)  # noqa: E731
        return [RegisteredFit(np_(p.phenotype[i]), np_(p.angles[i]), np_(p.rotation[i]), np_(p.translation[i]),
                              float(p.scale[i]), np_(v[i]), float(med[i]), seconds) for i in range(b)]


_MUSCLE_WEIGHT = [PHENOTYPE_KEYS.index("muscle"), PHENOTYPE_KEYS.index("weight")]


class _Problem:
    """The least-squares problem of one batch: unknowns ``x = [phenotype (G, 6), per mesh (B, K)]`` with
    G = 1 (shared) or B, and per mesh K = D angles / ANGLE_UNIT, rotation vector (3), translation (3) and, with
    ``fit_scale``, log scale (1), all relative to the similarity start ``rot0, t0, s0``."""

    _STEP = 1e-6  # forward-difference step in the unknowns' units

    def __init__(self, body: AnnyBody, target: torch.Tensor, ids: torch.Tensor, rot0: torch.Tensor,
                 t0: torch.Tensor, s0: torch.Tensor, settings: RegisteredFitSettings, share: bool) -> None:
        self.body, self.target, self.ids, self.s = body, target, ids, settings
        self.rot0, self.t0, self.s0 = rot0, t0, s0
        self.b = target.shape[0]
        self.g = 1 if share else self.b
        self.d = body.n_dofs
        self.k = self.d + 6 + (1 if settings.fit_scale else 0)
        # residuals in cm, each mesh's term a mean over the subset's vertices
        self.w = CM / np.sqrt(len(ids))
        self.sub = target[:, ids]

    def initial(self, phenotype: torch.Tensor, angles: torch.Tensor, rvec: torch.Tensor) -> torch.Tensor:
        """(G*6 + B*K,) start vector: ``phenotype`` (1, 6), ``angles`` (B, D) degrees, ``rvec`` (B, 3), and the
        translation that centres the started body on each mesh."""
        ph = phenotype.expand(self.g, 6)
        per = torch.zeros(self.b, self.k, dtype=self.target.dtype, device=self.target.device)
        per[:, : self.d] = angles / ANGLE_UNIT
        per[:, self.d: self.d + 3] = rvec
        with torch.no_grad():
            x = self._world(self._posed(ph, per, self.ids), per)
            per[:, self.d + 3: self.d + 6] = torch.einsum("bji,bj->bi", self.rot0, (self.sub - x).mean(1)) / self.s0[:, None]
        return torch.cat([ph.reshape(-1), per.reshape(-1)])

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[: 6 * self.g].view(self.g, 6), x[6 * self.g:].view(self.b, self.k)

    def _similarity(self, per: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """per : (R * B, K) rows ordered (copy, mesh) -> rotation (R*B, 3, 3), translation (R*B, 3), scale (R*B,)."""
        d, reps = self.d, per.shape[0] // self.b
        rot0, t0, s0 = self.rot0.repeat(reps, 1, 1), self.t0.repeat(reps, 1), self.s0.repeat(reps)
        rot = rot0 @ rotation_exp_torch(per[:, d: d + 3])
        trans = t0 + s0[:, None] * (rot0 @ per[:, d + 3: d + 6, None])[..., 0]
        scale = s0 * torch.exp(per[:, d + 6]) if self.s.fit_scale else s0
        return rot, trans, scale

    def params(self, x: torch.Tensor) -> BodyParams:
        ph, per = self.split(x)
        rot, trans, scale = self._similarity(per)
        return BodyParams(ph.expand(self.b, 6), per[:, : self.d] * ANGLE_UNIT, rot, trans, scale)

    def _posed(self, ph: torch.Tensor, per: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(B, m, 3) posed bodies (anny's frame) at ``ids`` for phenotype rows ``ph`` (1 or B, 6)."""
        rest_v, rest_p = self.body.rest_model(ph)
        return self.body.posed_subset(rest_v, rest_p, per[:, : self.d] * ANGLE_UNIT, ids)

    def _world(self, posed: torch.Tensor, per: torch.Tensor) -> torch.Tensor:
        """posed (R * B, m, 3) in anny's frame -> the meshes' frame by each row's similarity (rows as ``per``)."""
        rot, trans, scale = self._similarity(per)
        return scale[:, None, None] * posed @ rot.transpose(1, 2) + trans[:, None, :]

    def residuals(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Data residuals (B, 3m) in cm / sqrt(m) and prior residuals (B, 3D)."""
        ph, per = self.split(x)
        r = ((self._world(self._posed(ph, per, self.ids), per) - self.sub) * self.w).reshape(self.b, -1)
        return r, self._prior(per)

    def _prior(self, per: torch.Tensor) -> torch.Tensor:
        a = per[:, : self.d] * ANGLE_UNIT
        wl, wp = np.sqrt(self.s.limit_weight), np.sqrt(self.s.pose_weight)
        below, above = limit_residuals(a, self.body.rig.lower, self.body.rig.upper)
        return torch.cat([wl * below, wl * above, wp * a / POSE_PRIOR_UNIT], -1)

    def energy(self, x: torch.Tensor) -> float:
        r, q = self.residuals(x)
        return float(r.pow(2).sum() + q.pow(2).sum())

    def _jacobians(self, x: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-mesh columns (B, 3m, K) by forward differences and phenotype columns (B, 3m, 6) by central ones
        (each mesh's own phenotype group)."""
        h, k, b = self._STEP, self.k, self.b
        ph, per = self.split(x)
        rest_v, rest_p = self.body.rest_model(ph)
        shifted = per[None].repeat(k, 1, 1)
        shifted[torch.arange(k), :, torch.arange(k)] += h
        shifted = shifted.reshape(k * b, k)
        if self.g == 1:
            posed = self.body.posed_subset(rest_v, rest_p, shifted[:, : self.d] * ANGLE_UNIT, self.ids)
        else:  # rows ordered (column, mesh): each mesh keeps its own identity
            posed = self.body.posed_subset(rest_v.repeat(k, 1, 1), rest_p.repeat(k, 1, 1, 1),
                                           shifted[:, : self.d] * ANGLE_UNIT, self.ids)
        world = self._world(posed, shifted)
        world = ((world.view(k, b, -1, 3) - self.sub[None]) * self.w).reshape(k, b, -1)
        j_per = ((world - r[None]) / h).permute(1, 2, 0)
        # phenotype columns by central differences: anny's phenotype blend weights are piecewise linear with kinks
        # at their anchors (0.5 among them, where the start sits); a one-sided difference there sees one side's
        # slope only and the solver stalls on that side (measured: muscle 0.53 for a true 0.13)
        # anny clamps the phenotype to [0, 1]: at a bound the difference is taken on the inside only
        up, down = (1.0 - ph).clamp(max=h), ph.clamp(max=h)  # (G, 6)
        eye = torch.eye(6, dtype=x.dtype, device=x.device)
        step = (up + down).clamp_min(1e-12)
        if self.g > 1:
            step = step[:, None, :]  # (B, 1, 6): mesh i is group i
        j_ph = (self._phenotype_columns(ph, per, up[:, :, None] * eye)
                - self._phenotype_columns(ph, per, -down[:, :, None] * eye)) / step
        return j_per, j_ph

    def _phenotype_columns(self, ph: torch.Tensor, per: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """(B, 3m, 6) residuals with each phenotype value of each group moved by ``shift`` (G, 6, 6) in turn."""
        b = self.b
        rest_v, rest_p = self.body.rest_model((ph[:, None, :] + shift).reshape(self.g * 6, 6))
        if self.g == 1:  # rows ordered (column, mesh)
            rest_v, rest_p = rest_v.repeat_interleave(b, 0), rest_p.repeat_interleave(b, 0)
        else:
            order = torch.arange(6 * b, device=ph.device).view(b, 6).T.reshape(-1)
            rest_v, rest_p = rest_v[order], rest_p[order]
        rows = per.repeat(6, 1)
        posed = self.body.posed_subset(rest_v, rest_p, rows[:, : self.d] * ANGLE_UNIT, self.ids)
        world = self._world(posed, rows)
        return ((world.view(6, b, -1, 3) - self.sub[None]) * self.w).reshape(6, b, -1).permute(1, 2, 0)

    def _normal_equations(self, x: torch.Tensor, r: torch.Tensor, j_per: torch.Tensor, j_ph: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """J^T J and J^T r over all unknowns from the data residuals r (B, 3m) and their Jacobians (exact or
        updated), with the priors' exact (piecewise linear) Jacobians."""
        ph, per = self.split(x)
        d, k, b, g = self.d, self.k, self.b, self.g
        n = 6 * g + k * b
        hess = torch.zeros(n, n, dtype=x.dtype, device=x.device)
        grad = torch.zeros(n, dtype=x.dtype, device=x.device)
        a = per[:, :d] * ANGLE_UNIT
        lo, hi = self.body.rig.lower, self.body.rig.upper
        wl, wp = np.sqrt(self.s.limit_weight), np.sqrt(self.s.pose_weight)
        q_lo, q_hi, q_pr = self._prior(per).split(d, dim=-1)
        # d(prior residual)/d(angle variable): exact, the residuals being piecewise linear in the angles
        c_lo = -(a < lo).to(x.dtype) * wl * ANGLE_UNIT / LIMIT_UNIT
        c_hi = (a > hi).to(x.dtype) * wl * ANGLE_UNIT / LIMIT_UNIT
        c_pr = wp * ANGLE_UNIT / POSE_PRIOR_UNIT
        for i in range(b):
            sl = slice(6 * g + k * i, 6 * g + k * (i + 1))
            gi = slice(0, 6) if g == 1 else slice(6 * i, 6 * i + 6)
            hk = j_per[i].T @ j_per[i]
            gk = j_per[i].T @ r[i]
            hk[:d, :d] += torch.diag(c_lo[i] ** 2 + c_hi[i] ** 2 + c_pr**2)
            gk[:d] += c_lo[i] * q_lo[i] + c_hi[i] * q_hi[i] + c_pr * q_pr[i]
            hess[sl, sl] = hk
            grad[sl] = gk
            cross = j_ph[i].T @ j_per[i]
            hess[gi, sl] = cross
            hess[sl, gi] = cross.T
            hess[gi, gi] += j_ph[i].T @ j_ph[i]
            grad[gi] += j_ph[i].T @ r[i]
        return hess, grad

    def restart(self, x: torch.Tensor) -> torch.Tensor:
        """The better of ``x`` and a solve from ``x`` with muscle and weight mirrored about 0.5 (every group)."""
        other = x.clone()
        ph = other[: 6 * self.g].view(self.g, 6)
        ph[:, _MUSCLE_WEIGHT] = 1.0 - ph[:, _MUSCLE_WEIGHT]
        other = self.solve(other, pose_iterations=0)
        with torch.no_grad():
            return other if self.energy(other) < self.energy(x) else x

    def _secant(self, j_per: torch.Tensor, j_ph: torch.Tensor, dx: torch.Tensor, dr: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both Jacobians after the step dx (all unknowns) that changed the data residuals by dr (B, 3m): each mesh's
        own columns (its phenotype group's and its own) updated by Broyden's rule: the Jacobian is block-sparse (a
        mesh's residuals depend on its group's phenotype and its own values only), and updating each block with its
        mesh's step and change keeps the zero blocks and still explains the whole step (Schubert's sparse update)."""
        g, k = self.g, self.k
        dph = dx[: 6 * g].view(g, 6)
        dph = dph.expand(self.b, 6) if g == 1 else dph
        step = torch.cat([dph, dx[6 * g:].view(self.b, k)], 1)                       # (B, 6 + K)
        jt = torch.cat([j_ph, j_per], 2).transpose(1, 2)                             # (B, 6 + K, 3m)
        jt = broyden_update(jt, step, dr).transpose(1, 2)
        return jt[..., 6:].contiguous(), jt[..., :6].contiguous()

    def solve(self, x: torch.Tensor, pose_iterations: int | None = None) -> torch.Tensor:
        """Levenberg-Marquardt from ``x``; the phenotype held for the first ``pose_iterations`` accepted steps and
        kept in [0, 1]; at most ``settings.iterations`` accepted steps. An exact (finite-difference) Jacobian every
        ``settings.jacobian_every`` accepted steps, Broyden updates in between: a step that fails on an updated
        Jacobian is retried from an exact one (the retry counts no step); one that gains too little is kept, and
        whether to stop is judged on an exact Jacobian."""
        s = self.s
        first = s.pose_iterations if pose_iterations is None else pose_iterations
        every = int(s.jacobian_every)
        lam = 1e-3
        with torch.no_grad():
            r, q = self.residuals(x)
            e = float(r.pow(2).sum() + q.pow(2).sum())
            age = every  # updates since the exact Jacobian: none yet
            it = 0       # accepted steps; a pass without one is a retry on an exact Jacobian, at most one in a row
            while it < s.iterations:
                if age >= every:
                    j_per, j_ph = self._jacobians(x, r)
                    age = 0
                hess, grad = self._normal_equations(x, r, j_per, j_ph)
                ph = x[: 6 * self.g]
                held = ((ph <= 0.0) & (grad[: 6 * self.g] > 0)) | ((ph >= 1.0) & (grad[: 6 * self.g] < 0))
                if it < first:
                    held[:] = True
                idx = torch.nonzero(held).flatten()
                hess[idx, :] = 0.0
                hess[:, idx] = 0.0
                hess[idx, idx] = 1.0
                grad[idx] = 0.0
                diag = torch.diag(hess).clamp_min(1e-9)
                retry = False
                while True:
                    step = -torch.linalg.solve(hess + lam * torch.diag(diag), grad)
                    cand = x + step
                    cand[: 6 * self.g] = cand[: 6 * self.g].clamp(0.0, 1.0)
                    r_new, q_new = self.residuals(cand)
                    e_new = float(r_new.pow(2).sum() + q_new.pow(2).sum())
                    if e_new < e:
                        lam = max(lam / 3.0, 1e-7)
                        break
                    if age > 0:  # the updated Jacobian may be what failed: the next pass starts from an exact one
                        retry = True
                        break
                    lam *= 4.0
                    if lam > 1e8:
                        return x
                if retry:
                    age = every
                    continue
                it += 1
                gain = e - e_new
                was_exact = age == 0
                if age + 1 < every:
                    j_per, j_ph = self._secant(j_per, j_ph, cand - x, r_new - r)
                    age += 1
                else:
                    age = every
                x, e, r = cand, e_new, r_new
                if it > first and gain < s.tol * e:
                    if was_exact:
                        break
                    age = every  # too small a gain on an updated Jacobian: judged again on an exact one
        return x


def fit_registered(meshes: np.ndarray, topology: str = "notoes", share_phenotype: bool = False,
                   settings: RegisteredFitSettings = RegisteredFitSettings()) -> list[RegisteredFit]:
    """One call: fit anny of ``topology`` to ``meshes`` (B, n, 3) float64 in that topology's vertex order."""
    return RegisteredFitter(topology, settings).fit(meshes, share_phenotype=share_phenotype)
