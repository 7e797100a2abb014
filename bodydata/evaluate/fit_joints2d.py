"""Fitting a trained embedding to 2D joints seen by a pinhole camera (paper Eq. 16): codes, rotation, translation.

Eq. 16 minimises over e_s, e_p, R and t

    λ Σ_j w_j ρ(Π_K(R J_j(e_s, e_p) + t) - j_j) + λ_g E_g + λ_β |e_s|^2 + λ_θ |e_p|^2,

J_j the joints of the decoded mesh (averages of vertex sets, :mod:`bodydata.templates.joints`), j_j the given 2D
joints (pixels), Π_K the pinhole projection (focal length f and principal point c in pixels; camera frame x right,
y down, z forward, so a point X projects to f X_xy / X_z + c), ρ the Geman-McClure penalty
ρ(r) = σ² |r|² / (σ² + |r|²) of the 2D residual r in pixels (σ = 100 px by default: quadratic below ~σ, bounded
by σ² above, so a wrong joint cannot dominate). The paper gives λ, λ_g, λ_β, λ_θ = 55, 400, 5, 10 and we keep
them in these units: λ = 55 per px² (a joint off by 1 px costs ≈ 55, by ≫ σ at most 55 σ²), λ_β = 5 and
λ_θ = 10 per squared latent unit (the codes are VAE latents, unit prior variance), λ_g = 400 per unit of E_g.

E_g, the bending penalty (the paper: "relative rotations of elbows and knees ... a similar penalty function E_g
of [8] to prevent unnatural bending"; [8] = SMPLify penalises elbow and knee angles growing exponentially in the
direction of unnatural bending). Here, for each elbow and knee, R_rel = R_u^T R_d is the relative rotation of the
distal part (forearm, calf) to the proximal one (upper arm, thigh), R_k the rotation of part k's coarse feature
(``ĝ[k, :3]`` of the decoder, Eq. 2-4; for networks without ĝ the Kabsch rotation of the part's decoded vertices).
With u, a the unit proximal and distal segment directions of the template's rest joints and n = u × d / |u × d|
the hinge axis (d the direction the distal end swings to when the hinge flexes: anterior for elbows, posterior
for knees), the flexion angle is φ = atan2(n · (u × a'), u · a') with a' = R_rel a: 0 for a straight limb,
positive when flexed, negative when hyper-extended. E_g = Σ (exp(max(0, -φ)) - 1), φ in radians: zero for any
natural bend, growing exponentially with hyper-extension (1 rad costs e - 1 ≈ 1.72, times λ_g = 400).

Optimisation (Adam, exponentially decaying steps as in :mod:`bodydata.evaluate.fit`): codes start at zero (the
prior mean) or given codes; R starts upright and facing the camera (body up -> image up, body front -> towards the
camera), t from the 2D joints' spread: depth t_z = f s_3D / s_2D (s the RMS distance of the joints from their
centroid, 3D in the image plane of the start body), t_xy puts the 3D centroid on the 2D centroid's ray. Stage 1
moves only R and t; stage 2 moves everything. Depth leaves a front/back ambiguity: with ``try_flip`` a second
start turned 180° about the body's up axis runs beside the first and each problem keeps the lower energy. Joints
given as NaN (not seen) get no data term.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from bodydata.evaluate.fit import FitError

if TYPE_CHECKING:
    from bodydata.model.embedding import BodyEmbedding
    from bodydata.templates.template import Template

__all__ = ["FACING_CAMERA", "Camera", "Joints2dSettings", "Joints2dResult", "BendPenalty", "Joints2dFitter",
           "fit_joints2d", "geman_mcclure", "project"]

#: camera-from-body rotation of the start: body up (+z) -> image up (-y_cam), body front (-y) -> the camera (-z_cam)
FACING_CAMERA = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
_BODY_DIRECTIONS = {"anterior": np.array([0.0, -1.0, 0.0]), "posterior": np.array([0.0, 1.0, 0.0])}


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels: focal length ``focal`` and principal point ``center`` (cx, cy)."""

    focal: float
    center: tuple[float, float]

    def __post_init__(self):
        if not (math.isfinite(self.focal) and self.focal > 0):
            raise FitError(f"camera focal length must be a positive number of pixels, got {self.focal}")
        if len(self.center) != 2 or not all(math.isfinite(c) for c in self.center):
            raise FitError(f"camera center must be two finite pixel coordinates, got {self.center}")


def project(points: torch.Tensor, camera: Camera) -> torch.Tensor:
    """Pinhole projection: points (..., 3) in the camera frame (metres, z forward) -> (..., 2) pixels."""
    c = torch.as_tensor(camera.center, dtype=points.dtype, device=points.device)
    return camera.focal * points[..., :2] / points[..., 2:3] + c


def geman_mcclure(residual: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure penalty of 2D residuals (..., 2) in pixels -> (...,): σ² |r|² / (σ² + |r|²)."""
    r2 = (residual * residual).sum(-1)
    return sigma * sigma * r2 / (sigma * sigma + r2)


@dataclass(frozen=True)
class Joints2dSettings:
    """Eq. 16's weights (paper defaults, units in the module docstring) and the optimiser's settings.

    joint_weight : λ per px² of the Geman-McClure term.  sigma_px : its scale σ.  bend_weight : λ_g.
    shape_weight, pose_weight : λ_β, λ_θ per squared latent unit.  rigid_iterations : stage 1 (R, t only).
    iterations : stage 2 (everything).  lr_code (latent units), lr_rotation (radians), lr_translation (metres):
    Adam's first steps, decaying to a tenth over each stage.  try_flip : also start facing away (keep the better).
    """

    joint_weight: float = 55.0
    sigma_px: float = 100.0
    bend_weight: float = 400.0
    shape_weight: float = 5.0
    pose_weight: float = 10.0
    rigid_iterations: int = 60
    iterations: int = 300
    lr_code: float = 0.05
    lr_rotation: float = 0.02
    lr_translation: float = 0.02
    try_flip: bool = True


@dataclass
class Joints2dResult:
    """Fits of B sets of 2D joints.

    z : (B, L) float32 codes; shape, pose : (B, S), (B, P) their parts (None for a single latent).
    rotation : (B, 3, 3) float64, translation : (B, 3) float64 metres: camera point = R body point + t.
    vertices : (B, n, 3) float64 metres, the fitted meshes in the camera frame.  joints3d : (B, J, 3) their joints.
    joints2d : (B, J, 2) float64 the joints' projections (px).  reprojection_px : (B,) mean pixel distance to the
    given joints (seen ones).  bend_deg : (B, 4) flexion angles of the elbows and knees (degrees, negative =
    hyper-extended).  energy : (B,) final Eq. 16 energy.  flipped : (B,) bool
    the start facing away won.  seconds : (B,) the batch's wall time / B.
    """

    z: np.ndarray
    shape: np.ndarray | None
    pose: np.ndarray | None
    rotation: np.ndarray
    translation: np.ndarray
    vertices: np.ndarray
    joints3d: np.ndarray
    joints2d: np.ndarray
    reprojection_px: np.ndarray
    bend_deg: np.ndarray
    energy: np.ndarray
    flipped: np.ndarray
    seconds: np.ndarray


class BendPenalty:
    """E_g of Eq. 16 for one template: hinge axes and rest directions of the elbows and knees, precomputed.

    template : the :class:`~bodydata.templates.template.Template` (rest vertices, part names, z-up and facing -y as
    every anny template). joints : (J, 3) float64 the template's rest joints in :data:`JOINT_NAMES` order.
    """

    def __init__(self, template: "Template", joints: np.ndarray):
        from bodydata.templates.joints import BEND_LIMBS, JOINT_NAMES

        if (template.up_axis, template.front_axis) != ("z", "-y"):
            raise FitError(f"template {template.name!r} is not z-up and facing -y; the bending penalty's axes "
                           "assume it")
        jindex = {j: i for i, j in enumerate(JOINT_NAMES)}
        self.names = [limb[0] for limb in BEND_LIMBS]
        self.parts = np.array([[template.part_names.index(limb[4]), template.part_names.index(limb[5])]
                               for limb in BEND_LIMBS], np.int64)
        u, a, n = [], [], []
        for _, prox, hinge, dist, _, _, towards in BEND_LIMBS:
            uu = joints[jindex[hinge]] - joints[jindex[prox]]
            aa = joints[jindex[dist]] - joints[jindex[hinge]]
            uu, aa = uu / np.linalg.norm(uu), aa / np.linalg.norm(aa)
            nn = np.cross(uu, _BODY_DIRECTIONS[towards])
            u.append(uu), a.append(aa), n.append(nn / np.linalg.norm(nn))
        #: (4, 3) float64: proximal direction u, distal direction a (rest), hinge axis n
        self.u, self.a, self.n = np.array(u), np.array(a), np.array(n)

    def angles(self, part_rotations: torch.Tensor) -> torch.Tensor:
        """Flexion angles φ (B, 4) radians of part rotations (B, P, 3, 3) relative to the rest template."""
        dt, dev = part_rotations.dtype, part_rotations.device
        u, a, n = (torch.as_tensor(x, dtype=dt, device=dev) for x in (self.u, self.a, self.n))
        prox = part_rotations[:, self.parts[:, 0]]
        dist = part_rotations[:, self.parts[:, 1]]
        a_now = (prox.transpose(-1, -2) @ dist @ a[..., None])[..., 0]  # (B, 4, 3) in the proximal part's rest frame
        return torch.atan2((n * torch.cross(u.expand_as(a_now), a_now, dim=-1)).sum(-1), (u * a_now).sum(-1))

    @staticmethod
    def penalty(angles: torch.Tensor) -> torch.Tensor:
        """E_g (B,) of flexion angles (B, 4) radians: Σ exp(max(0, -φ)) - 1."""
        return (torch.exp(torch.clamp(-angles, min=0.0)) - 1.0).sum(-1)


class Joints2dFitter:
    """Eq. 16 for one model and camera: validates, builds the reconstructor, joint regressor and bending penalty once.

    model : a loaded :class:`~bodydata.model.embedding.BodyEmbedding` of an anny template (joint sets are shipped
    for ``anny`` and ``anny-lite``).  camera : :class:`Camera`.  settings : :class:`Joints2dSettings`.
    """

    def __init__(self, model: "BodyEmbedding", camera: Camera, settings: Joints2dSettings = Joints2dSettings()):
        from bodydata.templates.joints import joint_regressor, template_joint_sets
        from bodydata.templates.template import load_template

        if settings.iterations < 0 or settings.rigid_iterations < 0:
            raise FitError("iterations must be >= 0")
        if settings.sigma_px <= 0:
            raise FitError("sigma_px must be > 0")
        self.model = model.eval().requires_grad_(False)
        self.camera = camera
        self.settings = settings
        self.device = model.device
        self.rec = model.reconstructor()
        self.template = load_template(model.template)
        sets = template_joint_sets(self.template)
        self.joint_names = list(sets)
        reg = joint_regressor(sets, self.rec.n_vertices)
        self.regressor = torch.as_tensor(reg, device=self.device)
        self.bend = BendPenalty(self.template, reg @ self.template.vertices)
        groups = model.net.latent_groups()
        self.n_latent = max(s.stop for s in groups.values())
        prior = torch.full((self.n_latent,), settings.shape_weight, dtype=torch.float64)
        if model.disentangled:
            prior[groups["pose"]] = settings.pose_weight
        self.prior = prior.to(self.device)
        ctx = model.ctx
        self._g_unscale = torch.as_tensor(ctx.g_unscale, dtype=torch.float32, device=self.device)
        self._g_unoffset = torch.as_tensor(ctx.g_unoffset, dtype=torch.float32, device=self.device)
        labels = np.asarray(self.template.part_labels, np.int64)
        self._part_of = torch.as_tensor(labels, device=self.device)
        self._n_parts = len(self.template.part_names)
        self._rest = torch.as_tensor(self.template.vertices, device=self.device)

    # ------------------------------------------------------------------ pieces
    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes (B, L) -> vertices (B, n, 3) float64 metres (decoder frame) and part rotations (B, P, 3, 3)."""
        from bodydata.features.polar import rotation_exp_torch

        out = self.model.net.decode(z, neutral=False)
        p = self.rec(self.model.unscale(out.f))
        if out.g is not None:
            g = out.g * self._g_unscale + self._g_unoffset
            rot = rotation_exp_torch(g[..., :3].to(torch.float64))
        else:
            rot = self._part_kabsch(p)
        return p, rot

    def _part_kabsch(self, p: torch.Tensor) -> torch.Tensor:
        """(B, P, 3, 3) the best rotation of each part's rest vertices onto its decoded ones (no ĝ to read)."""
        k, lab = self._n_parts, self._part_of
        count = torch.bincount(lab, minlength=k).to(p.dtype)
        mean_q = torch.zeros(k, 3, dtype=p.dtype, device=p.device).index_add_(0, lab, self._rest) / count[:, None]
        mean_p = torch.zeros(len(p), k, 3, dtype=p.dtype, device=p.device).index_add_(1, lab, p) / count[:, None]
        q = self._rest - mean_q[lab]
        pc = p - mean_p[:, lab]
        cov = torch.zeros(len(p), k, 3, 3, dtype=p.dtype, device=p.device).index_add_(
            1, lab, pc[..., :, None] * q[None, :, None, :])  # Σ p q^T per part
        uu, _, vh = torch.linalg.svd(cov)
        d = torch.sign(torch.linalg.det(uu @ vh))
        fix = torch.ones_like(cov[..., 0])
        fix[..., 2] = d
        return uu @ torch.diag_embed(fix) @ vh

    def joints(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, n, 3) -> (B, J, 3) joints (vertex-set averages)."""
        return self.regressor @ vertices

    def energy(self, z: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor, target: torch.Tensor,
               weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 16 per problem (B,), the camera-frame joints (B, J, 3) and flexion angles (B, 4).

        z (B, L); rotation (B, 3, 3); translation (B, 3) m; target (B, J, 2) px (NaN-free); weight (B, J) 0/1."""
        s = self.settings
        p, part_rot = self.decode(z)
        cam = self.joints(p) @ rotation.transpose(1, 2) + translation[:, None, :]
        data = (weight * geman_mcclure(project(cam, self.camera) - target, s.sigma_px)).sum(1)
        angles = self.bend.angles(part_rot)
        zz = z.to(torch.float64)
        e = s.joint_weight * data + s.bend_weight * self.bend.penalty(angles) + (self.prior * zz * zz).sum(1)
        return e, cam, angles

    def start_pose(self, z0: torch.Tensor, target: np.ndarray, weight: np.ndarray,
                   flip: bool) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, 3) start rotations and (B, 3) translations (metres) from the 2D joints (module docstring)."""
        with torch.no_grad():
            body = self.joints(self.decode(z0)[0]).cpu().numpy()
        rot0 = FACING_CAMERA @ np.diag([-1.0, -1.0, 1.0]) if flip else FACING_CAMERA
        rots, trans = [], []
        for b in range(len(target)):
            seen = weight[b] > 0
            x = body[b, seen] @ rot0.T
            j2 = target[b, seen]
            s3 = np.sqrt(((x[:, :2] - x[:, :2].mean(0)) ** 2).sum(1).mean())
            s2 = np.sqrt(((j2 - j2.mean(0)) ** 2).sum(1).mean())
            depth = self.camera.focal * s3 / max(s2, 1e-9)
            c3 = x.mean(0)
            xy = (j2.mean(0) - np.asarray(self.camera.center)) * depth / self.camera.focal - c3[:2]
            rots.append(rot0)
            trans.append(np.array([xy[0], xy[1], depth - c3[2]]))
        return np.array(rots), np.array(trans)

    # ------------------------------------------------------------------ the fit
    def fit(self, joints2d: np.ndarray, start: np.ndarray | None = None) -> Joints2dResult:
        """Fit a batch. joints2d : (B, J, 2) float pixels in :data:`JOINT_NAMES` order, NaN for a joint not seen.
        start : (B, L) codes to start from (default zeros)."""
        from bodydata.features.polar import rotation_exp_torch

        s = self.settings
        q = np.asarray(joints2d, np.float64)
        n_joints = len(self.joint_names)
        if q.ndim != 3 or q.shape[1:] != (n_joints, 2):
            raise FitError(f"2D joints have shape {q.shape}, expected (B, {n_joints}, 2): "
                           f"{', '.join(self.joint_names)}")
        seen = np.isfinite(q).all(-1)
        if (seen.sum(1) < 3).any():
            raise FitError("every set of 2D joints needs at least 3 seen (finite) joints")
        t0 = time.perf_counter()
        bsz = len(q)
        flips = [False, True] if s.try_flip else [False]
        m = len(flips)
        target_np = np.tile(np.where(seen[..., None], q, 0.0), (m, 1, 1))
        weight_np = np.tile(seen.astype(np.float64), (m, 1))
        z0 = (torch.zeros(bsz, self.n_latent, device=self.device) if start is None
              else torch.as_tensor(np.asarray(start, np.float32), device=self.device))
        starts = [self.start_pose(z0, q[:, :], seen, f) for f in flips]
        r0 = torch.as_tensor(np.concatenate([r for r, _ in starts]), device=self.device)
        target = torch.as_tensor(target_np, device=self.device)
        weight = torch.as_tensor(weight_np, device=self.device)
        z = z0.repeat(m, 1).clone().requires_grad_(True)
        omega = torch.zeros(m * bsz, 3, dtype=torch.float64, device=self.device, requires_grad=True)
        trans = torch.as_tensor(np.concatenate([t for _, t in starts]), device=self.device).requires_grad_(True)
        best_e = torch.full((m * bsz,), float("inf"), dtype=torch.float64, device=self.device)
        best = [z.detach().clone(), omega.detach().clone(), trans.detach().clone()]

        def run(groups: list[dict], iterations: int) -> None:
            nonlocal best_e
            opt = torch.optim.Adam(groups)
            sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.1 ** (1.0 / max(iterations, 1)))
            for it in range(iterations + 1):
                with torch.set_grad_enabled(it < iterations):
                    e, _, _ = self.energy(z, rotation_exp_torch(omega) @ r0, trans, target, weight)
                with torch.no_grad():
                    better = e < best_e
                    best_e = torch.where(better, e.detach(), best_e)
                    for b_, cur in zip(best, (z, omega, trans)):
                        b_[better] = cur.detach()[better].to(b_.dtype)
                if it == iterations:
                    break
                opt.zero_grad(set_to_none=True)
                e.sum().backward()
                opt.step()
                sched.step()
            with torch.no_grad():  # the next stage starts from the best state so far
                for b_, cur in zip(best, (z, omega, trans)):
                    cur.copy_(b_)

        run([{"params": [omega], "lr": s.lr_rotation}, {"params": [trans], "lr": s.lr_translation}],
            s.rigid_iterations)
        run([{"params": [z], "lr": s.lr_code}, {"params": [omega], "lr": s.lr_rotation},
             {"params": [trans], "lr": s.lr_translation}], s.iterations)
        with torch.no_grad():
            pick = best_e.reshape(m, bsz).argmin(0)
            rows = pick * bsz + torch.arange(bsz, device=self.device)
            zb, ob, tb = (x[rows] for x in best)
            rot = rotation_exp_torch(ob) @ r0[rows]
            e, cam, angles = self.energy(zb, rot, tb, target[rows], weight[rows])
            verts = self.decode(zb)[0] @ rot.transpose(1, 2) + tb[:, None, :]
            px = project(cam, self.camera)
        px_np = px.cpu().numpy()
        err = np.where(seen, np.linalg.norm(px_np - np.where(seen[..., None], q, 0.0), axis=-1), np.nan)
        zn = zb.cpu().numpy().astype(np.float32)
        shape = pose = None
        if self.model.disentangled:
            g = self.model.net.latent_groups()
            shape, pose = zn[:, g["shape"]], zn[:, g["pose"]]
        return Joints2dResult(zn, shape, pose, rot.cpu().numpy(), tb.cpu().numpy(), verts.cpu().numpy(),
                              cam.cpu().numpy(), px_np, np.nanmean(err, axis=1), np.degrees(angles.cpu().numpy()),
                              e.cpu().numpy(), pick.cpu().numpy().astype(bool),
                              np.full(bsz, (time.perf_counter() - t0) / bsz))


def fit_joints2d(model: "BodyEmbedding", joints2d: np.ndarray, camera: Camera,
                 settings: Joints2dSettings = Joints2dSettings(), start: np.ndarray | None = None) -> Joints2dResult:
    """One call: :class:`Joints2dFitter` of ``model`` and ``camera``, fitted to joints2d (B, J, 2) pixels."""
    return Joints2dFitter(model, camera, settings).fit(joints2d, start)
