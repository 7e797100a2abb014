"""Fitting a trained embedding to meshes in the template's connectivity (paper Eq. 15), batched, CPU or CUDA.

Eq. 15 minimises over the codes and a global rigid motion (R, t)

    λ Σ_i |R p_i(e_s, e_p) + t - q_i|^2 + λ_β |e_s|^2 + λ_θ |e_p|^2,

p_i the decoded mesh's vertices (the differentiable ACAP solve), q_i the given mesh's. The paper uses
λ = 1e6 with meshes in metres and λ_β = λ_θ = 1; we measure distances in millimetres, where the same energy
is λ = 1 per mm² (``FitSettings.vertex_weight``). A single-latent model (meshVAE, PCA) has one prior term,
λ_β |z|^2. With ``markers`` only those vertices enter the sum (sparse-marker fitting, paper Table 5).

Start: codes from the encoder's posterior means of the mesh's ACAP features (or zeros), R, t from the Kabsch
alignment of that start onto the mesh. Two solvers (``FitSettings.solver``):

* ``lm`` (default): Levenberg–Marquardt on the residuals (:mod:`bodydata.evaluate.fit_lm`), at most 40 steps, an
  exact Jacobian every 4 kept steps and Broyden updates between them.
* ``adam``: Adam with an exponentially decaying step (to a tenth at the last step), R = exp([ω]x) R_0 with the
  rotation vector ω optimised, at most 200 steps. Each mesh keeps its lowest-energy state; a mesh stops when its
  energy has not fallen by more than ``tolerance`` (relative) over the last ``patience`` steps.

``python benchmarks/bench_fit.py`` (the paper-size anny-lite dhnn of docs/evaluate.md's Table 2, 8 unseen test bodies,
one torch thread, one process; the distance is the mean MED to the same fits refined by 100 more exact LM steps): LM
40 steps with Broyden updates 1.97 s per mesh, 0.91 mm (max 2.22); LM 20 exact steps 2.72 s, 1.00 mm (max 2.50);
Adam 200 steps 0.74 s, 3.98 mm (docs/evaluate.md, "Broyden updates"). Meshes in a batch do not interact (each has its own steps and stops on its
own), so the batch size is only a speed option.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np
import torch

from bodydata.errors import BodydataError
from bodydata.evaluate.metrics import MM_PER_M, med_mm
from bodydata.evaluate.solvers import DEFAULT_JACOBIAN_EVERY, DEFAULT_STEPS, SOLVERS
from bodydata.secant import refresh_interval_error

if TYPE_CHECKING:
    from bodydata.model.embedding import BodyEmbedding

__all__ = ["DEFAULT_STEPS", "SOLVERS", "FitError", "FitSettings", "FitResult", "MeshFitter"]


class FitError(BodydataError):
    """Meshes or markers that do not fit the model (wrong vertex count, markers out of range, ...)."""


@dataclass(frozen=True)
class FitSettings:
    """Eq. 15's weights and the optimiser's settings.

    vertex_weight : λ per mm² (1.0 = the paper's 1e6 per m²).  shape_weight, pose_weight : λ_β, λ_θ.
    solver : ``"lm"`` (Levenberg–Marquardt, :mod:`bodydata.evaluate.fit_lm`) or ``"adam"``.
    iterations : steps at most; None: the solver's own (:data:`DEFAULT_STEPS`: LM 40, Adam 200, the paper's about
    200).  lr_code : Adam's step on the codes (latent units).
    lr_rotation : Adam's step on the rotation vector (radians).  lr_translation : Adam's step on t (metres).
    rigid : optimise R, t (False: identity and zero, alignment "none").  init : ``"encoder"`` or ``"zero"``.
    tolerance, patience : early stop, relative energy decrease over ``patience`` Adam steps or over one kept LM step.
    jacobian_every : LM: an exact (finite-difference) Jacobian at least every this many kept steps, Broyden's secant
    updates in between (1: exact at every step; :data:`DEFAULT_JACOBIAN_EVERY`).
    """

    vertex_weight: float = 1.0
    shape_weight: float = 1.0
    pose_weight: float = 1.0
    iterations: int | None = None
    lr_code: float = 0.1
    init: Literal["encoder", "zero"] = "encoder"
    lr_rotation: float = 0.01
    lr_translation: float = 0.005
    rigid: bool = True
    tolerance: float = 1e-5
    patience: int = 20
    solver: Literal["lm", "adam"] = "lm"
    jacobian_every: int = DEFAULT_JACOBIAN_EVERY

    @property
    def steps(self) -> int:
        """The step limit in force: ``iterations`` or the solver's default."""
        return DEFAULT_STEPS[self.solver] if self.iterations is None else int(self.iterations)

    @property
    def alignment(self) -> str:
        """The alignment the fit's errors are measured after: ``rigid`` or ``none``."""
        return "rigid" if self.rigid else "none"


@dataclass
class FitResult:
    """Fitted codes and meshes of a batch of B targets.

    z : (B, L) float32 the whole latent vector; shape, pose : (B, S), (B, P) its parts (None for a single latent).
    rotation : (B, 3, 3) float64, translation : (B, 3) float64 metres: target ≈ decoded @ R.T + t.
    vertices : (B, n, 3) float64 metres, the fitted meshes in the targets' frame (R p + t).
    med_mm : (B,) float64 MED to the targets over ALL vertices (markers or not), after the fit's R, t.
    start_med_mm : (B,) the same for the starting codes (encoder or zero) after their Kabsch alignment.
    energy : (B,) final Eq. 15 energy.  iterations : (B,) int steps each mesh took (Adam steps, or LM steps tried) before it stopped.  seconds : (B,) the batch's wall time / B.
    """

    z: np.ndarray
    shape: np.ndarray | None
    pose: np.ndarray | None
    rotation: np.ndarray
    translation: np.ndarray
    vertices: np.ndarray
    med_mm: np.ndarray
    start_med_mm: np.ndarray
    energy: np.ndarray
    iterations: np.ndarray
    seconds: np.ndarray


class MeshFitter:
    """Eq. 15 for one model: validates the model and the markers and builds the reconstructor once.

    model : a loaded :class:`~bodydata.model.embedding.BodyEmbedding` (its weights are frozen here).
    settings : :class:`FitSettings`.  markers : vertex indices (K,) to fit from, or None for every vertex.
    """

    def __init__(self, model: "BodyEmbedding", settings: FitSettings = FitSettings(),
                 markers: Sequence[int] | None = None):
        if settings.init not in ("encoder", "zero"):
            raise FitError(f"unknown init {settings.init!r} (expected encoder or zero)")
        if settings.solver not in SOLVERS:
            raise FitError(f"unknown solver {settings.solver!r} (expected {' or '.join(SOLVERS)})")
        bad_every = refresh_interval_error(settings.jacobian_every)
        if bad_every:
            raise FitError(bad_every)
        if settings.iterations is not None and settings.iterations < 0:
            raise FitError("iterations must be >= 0")
        self.model = model.eval().requires_grad_(False)
        self.settings = settings
        self.rec = model.reconstructor()
        self.n_vertices = self.rec.n_vertices
        self.device = model.device
        groups = model.net.latent_groups()
        self.n_latent = max(s.stop for s in groups.values())
        # λ per latent dimension: λ_β on the shape part (or the single latent), λ_θ on the pose part
        prior = torch.full((self.n_latent,), settings.shape_weight, dtype=torch.float64)
        if model.disentangled:
            prior[groups["pose"]] = settings.pose_weight
        self.prior = prior.to(self.device)
        self.markers = None
        if markers is not None:
            m = np.asarray(markers, np.int64).ravel()
            if len(m) < 3 or m.min() < 0 or m.max() >= self.n_vertices or len(np.unique(m)) != len(m):
                raise FitError(f"markers must be at least 3 distinct vertex indices in [0, {self.n_vertices}), "
                               f"got {len(m)} (range {m.min() if len(m) else '-'}..{m.max() if len(m) else '-'})")
            self.markers = torch.as_tensor(m, device=self.device)
        self._extractor = None

    # ------------------------------------------------------------------ pieces
    def features(self, targets: np.ndarray) -> np.ndarray:
        """Raw ACAP features (B, n, 9) float32 of meshes (B, n, 3) in the template's connectivity (the encoder's input)."""
        if self._extractor is None:
            from bodydata.dataset.mesh_features import extractor_options
            from bodydata.features.acap import AcapExtractor
            from bodydata.templates.template import load_template

            tpl = load_template(self.model.template)
            self._extractor = AcapExtractor(tpl.vertices, tpl.faces, None,
                                            **extractor_options(**self.model.extractor))
        return self._extractor(np.asarray(targets, np.float64)).f.astype(np.float32)

    def start_codes(self, targets: np.ndarray, features: np.ndarray | None = None) -> torch.Tensor:
        """(B, L) float32 starting codes: the encoder's posterior means (features computed when not given) or zeros."""
        bsz = len(targets)
        if self.settings.init == "zero":
            return torch.zeros(bsz, self.n_latent, device=self.device)
        f = self.features(targets) if features is None else np.asarray(features, np.float32)
        codes = self.model.encode(torch.as_tensor(f, device=self.device))
        return torch.cat(codes, 1) if isinstance(codes, tuple) else codes

    def decode_vertices(self, z: torch.Tensor) -> torch.Tensor:
        """(B, L) codes -> (B, n, 3) float64 metres in the decoder's frame; differentiable."""
        parts = self.model.split(z)
        f = self.model.decode(*parts) if isinstance(parts, tuple) else self.model.decode(parts)
        return self.rec(f)

    def energy(self, z: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor, target: torch.Tensor,
               vertices: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 15 per mesh (B,): codes z (B, L), rotation (B, 3, 3), translation (B, 3) m, target (B, n, 3) m."""
        p = self.decode_vertices(z) if vertices is None else vertices
        d = (p @ rotation.transpose(1, 2) + translation[:, None, :] - target) * MM_PER_M
        if self.markers is not None:
            d = d[:, self.markers]
        zz = z.to(torch.float64)
        return self.settings.vertex_weight * (d * d).sum((1, 2)) + (self.prior * zz * zz).sum(1)

    def _kabsch(self, p: torch.Tensor, target: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        from bodydata.mesh.alignment import align

        src, tgt = p.detach().cpu().numpy(), target.detach().cpu().numpy()
        if self.markers is not None:
            idx = self.markers.cpu().numpy()
            src, tgt = src[:, idx], tgt[:, idx]
        al = align(src, tgt)
        return al.rotation, al.translation

    # ------------------------------------------------------------------ the fit
    def fit(self, targets: np.ndarray, features: np.ndarray | None = None,
            start: np.ndarray | None = None) -> FitResult:
        """Fit a batch. targets : (B, n, 3) float metres in the template's connectivity. features : (B, n, 9) raw
        ACAP features of the targets for the encoder start (computed when needed and not given). start : (B, L)
        codes to start from instead (e.g. a previous fit)."""
        s = self.settings
        q = np.asarray(targets, np.float64)
        if q.ndim != 3 or q.shape[1:] != (self.n_vertices, 3):
            raise FitError(f"targets have shape {q.shape}, expected (B, {self.n_vertices}, 3) in the template's "
                           "connectivity")
        if not np.isfinite(q).all():
            raise FitError("targets have non-finite vertex coordinates")
        t0 = time.perf_counter()
        bsz = len(q)
        target = torch.as_tensor(q, device=self.device)
        z0 = (torch.as_tensor(np.asarray(start, np.float32), device=self.device) if start is not None
              else self.start_codes(q, features))
        with torch.no_grad():
            # one mesh a call: float32 rounding depends on the batch, and the start's R, t must not (the batch size
            # is a speed option; 40 LM steps amplify a 1e-7 difference in the start to 1e-4 in the codes)
            p0 = torch.cat([self.decode_vertices(z0[i:i + 1]) for i in range(bsz)]) if bsz else self.decode_vertices(z0)
        if s.rigid:
            r0, tr0 = self._kabsch(p0, target)
        else:
            r0, tr0 = np.broadcast_to(np.eye(3), (bsz, 3, 3)).copy(), np.zeros((bsz, 3))
        r0 = torch.as_tensor(r0, device=self.device)
        start_med = _med(p0 @ r0.transpose(1, 2) + torch.as_tensor(tr0, device=self.device)[:, None], target)
        if s.solver == "lm":
            from bodydata.evaluate.fit_lm import lm_fit

            zb, rot, tb, steps, _ = lm_fit(self, z0, r0, torch.as_tensor(tr0, device=self.device).clone(), target)
        else:
            zb, rot, tb, steps = self._adam(z0, r0, tr0, target)
        with torch.no_grad():
            fitted = self.decode_vertices(zb) @ rot.transpose(1, 2) + tb[:, None, :]
            energy = self.energy(zb, rot, tb, target)
            med = _med(fitted, target)
        seconds = (time.perf_counter() - t0) / bsz
        zn = zb.detach().cpu().numpy().astype(np.float32)
        shape = pose = None
        if self.model.disentangled:
            g = self.model.net.latent_groups()
            shape, pose = zn[:, g["shape"]], zn[:, g["pose"]]
        return FitResult(zn, shape, pose, rot.cpu().numpy(), tb.cpu().numpy(), fitted.cpu().numpy(), med,
                         start_med, energy.cpu().numpy(), steps.cpu().numpy(), np.full(bsz, seconds))

    def _adam(self, z0: torch.Tensor, r0: torch.Tensor, tr0: np.ndarray, target: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Adam from codes z0 (B, L), rotation r0 (B, 3, 3), translation tr0 (B, 3): each mesh's lowest-energy
        codes, rotation, translation and its step count."""
        from bodydata.features.polar import rotation_exp_torch

        s = self.settings
        bsz = len(z0)
        z = z0.clone().requires_grad_(True)
        omega = torch.zeros(bsz, 3, dtype=torch.float64, device=self.device, requires_grad=s.rigid)
        trans = torch.as_tensor(tr0, device=self.device).clone().requires_grad_(s.rigid)
        groups = [{"params": [z], "lr": s.lr_code}]
        if s.rigid:
            groups += [{"params": [omega], "lr": s.lr_rotation}, {"params": [trans], "lr": s.lr_translation}]
        opt = torch.optim.Adam(groups)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.1 ** (1.0 / max(s.steps, 1)))
        best_e = torch.full((bsz,), float("inf"), dtype=torch.float64, device=self.device)
        best = [z.detach().clone(), omega.detach().clone(), trans.detach().clone()]
        active = torch.ones(bsz, dtype=torch.bool, device=self.device)
        steps = torch.zeros(bsz, dtype=torch.int64, device=self.device)
        history: list[torch.Tensor] = []
        for it in range(s.steps + 1):
            with torch.set_grad_enabled(it < s.steps):
                rot = rotation_exp_torch(omega) @ r0
                e = self.energy(z, rot, trans, target)
            with torch.no_grad():
                # a converged mesh keeps the state it had then, so its result does not depend on its batch
                better = (e < best_e) & active
                best_e = torch.where(better, e.detach(), best_e)
                for b, cur in zip(best, (z, omega, trans)):
                    b[better] = cur.detach()[better].to(b.dtype)
                history.append(best_e.clone())
                active &= ~_converged(history, s.patience, s.tolerance)
            if it == s.steps or not bool(active.any()):
                break
            steps += active.long()
            opt.zero_grad(set_to_none=True)
            e.sum().backward()
            opt.step()
            sched.step()
        zb, ob, tb = best
        return zb, (rotation_exp_torch(ob) @ r0).detach(), tb, steps


def _med(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return med_mm(a.detach().cpu().numpy(), b.detach().cpu().numpy())


def _converged(history: list[torch.Tensor], patience: int, tolerance: float) -> torch.Tensor:
    """(B,) bool: meshes whose best energy fell by at most ``tolerance`` (relative) over ``patience`` iterations."""
    new = history[-1]
    if patience <= 0 or len(history) <= patience:
        return torch.zeros_like(new, dtype=torch.bool)
    old = history[-1 - patience]
    return (old - new) <= tolerance * old.abs().clamp_min(1e-12)
