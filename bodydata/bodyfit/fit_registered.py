"""Fitting anny (phenotype, joint angles, similarity) to meshes already in an anny topology (known vertex correspondence), batched.

The ``anny`` and ``anny-lite`` templates are anny's ``notoes`` / ``notoes_collapse10pc`` topologies in anny's
vertex order, so a mesh converted to one of them corresponds vertex for vertex with :class:`AnnyBody` of that
topology: no nearest-neighbour search, no orientation hypotheses. Energy per mesh (lengths in centimetres so a
residual of 1 is 1 cm and the prior weights read against it)::

    E = mean_i |x_i(params) - y_i|^2  +  w_lim E_lim(angles)  +  w_pose |angles / 90 deg|^2

``E_lim`` is :func:`bodydata.bodyfit.rig.limit_penalty`; the weak pose prior only settles what the vertices
cannot tell apart (the pelvis DOFs against the global rotation, both turning the body about the pelvis).

Start: the average body at the reference pose, placed on each mesh by a similarity (Umeyama/Kabsch). Then Adam
(first moves of the limbs, robust to the poor start) and L-BFGS (the exact end). Meshes are fitted as one batch;
each keeps its own parameters, except the phenotype when ``share_phenotype`` (several poses of one subject).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from bodydata.bodyfit.body import AnnyBody, BodyParams
from bodydata.bodyfit.rig import limit_penalty
from bodydata.errors import BodydataError
from bodydata.features.polar import rotation_exp_torch
from bodydata.mesh.alignment import align, kabsch_rotation

__all__ = ["RegisteredFit", "RegisteredFitError", "RegisteredFitSettings", "RegisteredFitter", "fit_registered"]

_CM = 100.0
_ANGLE_UNIT = 30.0  # optimiser variable = angle / 30 degrees, comparable in size to the other variables


class RegisteredFitError(BodydataError, ValueError):
    """Meshes that do not match the body's topology or contain non-finite coordinates."""


@dataclass(frozen=True)
class RegisteredFitSettings:
    """bone_iterations : L-BFGS steps of the per-bone rotation start; adam_iterations, lbfgs_iterations : steps
    of the two stages, the L-BFGS one repeated ``lbfgs_rounds`` times with a fresh history (anny-lite, 4 subjects
    x 4 poses: neutral MED 4.8 mm with one round of 150, 4.3 mm with three of 100, twice the time); lr : Adam step; limit_weight, pose_weight :
    prior weights (module docstring); share_phenotype : one phenotype for every mesh of the batch."""

    bone_iterations: int = 30
    adam_iterations: int = 40
    lbfgs_iterations: int = 100
    lbfgs_rounds: int = 3
    lr: float = 0.05
    limit_weight: float = 1.0
    pose_weight: float = 1e-3
    share_phenotype: bool = False
    fit_scale: bool = True


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
        with torch.no_grad():
            self._reference = self.body(self.body.params(1)).posed[0].cpu().numpy().astype(np.float64)
        n, nb = self.body.n_vertices, len(self.body.bone_labels)
        w = np.zeros((n, nb))
        np.add.at(w, (np.repeat(np.arange(n), self.body.weights.shape[1]), self.body.weight_bones.cpu().numpy().ravel()),
                  self.body.weights.cpu().numpy().ravel())
        self._bone_weights = w

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

    def _bone_start(self, y: np.ndarray, start, ang: torch.Tensor, logit: torch.Tensor, rvec: torch.Tensor) -> None:
        """Angles from per-bone rotations: each bone's rotation from the reference body to the mesh (Kabsch of its
        skinned vertices, weighted by their skinning weights) is a direct, well-conditioned target for the rig, so a
        few L-BFGS steps on ``sum_b m_b |R_b(angles) - G_b|_F^2`` reach poses (a 90-degree hip) that descent on
        the vertices reaches only slowly from the reference pose."""
        body, s = self.body, self.settings
        local = np.einsum("bij,bnj->bni", np.swapaxes(start.rotation, 1, 2),
                          y - start.translation[:, None, :]) / start.scale[:, None, None]
        w = self._bone_weights  # (n, n_bones)
        mass = w.sum(0)
        used = mass >= 3.0  # bones that move at least a few vertices' worth
        wn = w[:, used] / mass[used]
        ref = self._reference
        rc = wn.T @ ref  # (k, 3)
        zc = np.einsum("nk,bnd->bkd", wn, local)
        cov = np.einsum("nk,bnki,nkj->bkij", wn, local[:, :, None, :] - zc[:, None], ref[:, None, :] - rc[None])
        g = torch.as_tensor(kabsch_rotation(cov), dtype=body.dtype, device=body.device)  # (B, k, 3, 3)
        m = torch.as_tensor(np.sqrt(mass[used]), dtype=body.dtype, device=body.device)
        idx = torch.as_tensor(np.flatnonzero(used), device=body.device)
        b = len(y)
        variables = [ang, rvec]
        opt = torch.optim.LBFGS(variables, lr=1.0, max_iter=s.bone_iterations, history_size=20,
                                line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            p = body.params(b)
            p.phenotype = torch.sigmoid(logit.detach()).expand(b, 6)
            p.angles = ang * _ANGLE_UNIT
            rot = body(p).bone_transforms[:, idx, :3, :3]
            # the global turn left by the similarity start goes to rvec (applied after the rig)
            rot = rotation_exp_torch(rvec)[:, None] @ rot
            e = (m[None, :, None, None] * (rot - g).pow(2)).sum() + s.limit_weight * limit_penalty(
                p.angles, body.rig.lower, body.rig.upper).sum()
            e.backward()
            return e

        opt.step(closure)

    def fit(self, meshes: np.ndarray, share_phenotype: bool | None = None) -> list[RegisteredFit]:
        """Fit every mesh of ``meshes`` (B, n, 3) float64 (or one (n, 3)); one :class:`RegisteredFit` per mesh."""
        t0 = time.perf_counter()
        s = self.settings
        share = s.share_phenotype if share_phenotype is None else bool(share_phenotype)
        y = self._check(meshes)
        b = len(y)
        body, dt, dev = self.body, self.body.dtype, self.body.device
        start = align(np.broadcast_to(self._reference, y.shape), y, scale=True)
        as_t = lambda x: torch.as_tensor(np.asarray(x), dtype=dt, device=dev)
        target = as_t(y)
        if not s.fit_scale:  # meshes in metres: a rigid start, the body's size left to the phenotype
            start = align(np.broadcast_to(self._reference, y.shape), y)
        rot0, t0_, s0 = as_t(start.rotation), as_t(start.translation), as_t(start.scale)
        logit = torch.zeros(1 if share else b, 6, dtype=dt, device=dev, requires_grad=True)
        ang = torch.zeros(b, body.n_dofs, dtype=dt, device=dev, requires_grad=True)
        rvec = torch.zeros(b, 3, dtype=dt, device=dev, requires_grad=True)
        trans = torch.zeros(b, 3, dtype=dt, device=dev, requires_grad=True)
        logs = torch.zeros(b, dtype=dt, device=dev, requires_grad=True)
        variables = [logit, ang, rvec, trans] + ([logs] if s.fit_scale else [])
        lo, hi = body.rig.lower, body.rig.upper

        def params() -> BodyParams:
            phen = torch.sigmoid(logit).expand(b, 6)
            return BodyParams(phen, ang * _ANGLE_UNIT, rot0 @ rotation_exp_torch(rvec), t0_ + trans, s0 * torch.exp(logs))

        def energy() -> tuple[torch.Tensor, torch.Tensor]:
            p = params()
            x = body(p).vertices
            data = ((x - target) * _CM).pow(2).sum(-1).mean(-1)  # (B,) cm^2
            prior = s.limit_weight * limit_penalty(p.angles, lo, hi) + s.pose_weight * (p.angles / 90.0).pow(2).sum(-1)
            return (data + prior).sum(), x

        if s.bone_iterations > 0:
            self._bone_start(y, start, ang, logit, rvec)
            with torch.no_grad():  # the turn found about the pelvis moved the body: re-centre it on the mesh
                p = params()
                trans += (target - body(p).vertices).mean(1)
        opt = torch.optim.Adam(variables, lr=s.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(s.adam_iterations, 1), eta_min=0.1 * s.lr)
        for _ in range(s.adam_iterations):
            opt.zero_grad()
            e, _ = energy()
            e.backward()
            opt.step()
            sched.step()
        for _ in range(s.lbfgs_rounds if s.lbfgs_iterations > 0 else 0):
            # a fresh history each round: the curvature pairs of the first moves mislead the end game
            lbfgs = torch.optim.LBFGS(variables, lr=1.0, max_iter=s.lbfgs_iterations, history_size=20,
                                      line_search_fn="strong_wolfe", tolerance_grad=1e-10, tolerance_change=1e-14)

            def closure(opt: torch.optim.LBFGS = lbfgs) -> torch.Tensor:
                opt.zero_grad()
                e, _ = energy()
                e.backward()
                return e

            lbfgs.step(closure)
        with torch.no_grad():
            p = params()
            x = body(p).vertices
            med = (x - target).norm(dim=-1).mean(-1) * 1000.0
        seconds = time.perf_counter() - t0
        np_ = lambda v: v.detach().cpu().numpy().astype(np.float64)
        return [RegisteredFit(np_(p.phenotype[i]), np_(p.angles[i]), np_(p.rotation[i]), np_(p.translation[i]),
                              float(p.scale[i]), np_(x[i]), float(med[i]), seconds) for i in range(b)]


def fit_registered(meshes: np.ndarray, topology: str = "notoes", share_phenotype: bool = False,
                   settings: RegisteredFitSettings = RegisteredFitSettings()) -> list[RegisteredFit]:
    """One call: fit anny of ``topology`` to ``meshes`` (B, n, 3) float64 in that topology's vertex order."""
    return RegisteredFitter(topology, settings).fit(meshes, share_phenotype=share_phenotype)
