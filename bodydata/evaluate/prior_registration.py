"""A trained embedding as the registration prior (paper §7, the FAUST experiment): Eq. 14 over e_s, e_p and free vertices.

The sparse ACAP prior of Eq. 14 (:mod:`bodydata.registration.register`) is replaced by the learned body model:
the template is registered onto a target mesh of any connectivity by optimising the codes (e_s, e_p) of a run
of ``bodydata train`` (:func:`bodydata.model.load`), a global similarity (R, s, t) and then free vertices p.
The result has the :class:`~bodydata.registration.register.RegistrationResult` shape, and
:class:`ModelPriorRegistrar` offers the Registrar's ``template``, ``config.ignore_landmarks``, ``register`` and
``register_batch``, so :func:`bodydata.registration.convert.convert_meshes` measures and writes its conversions
unchanged (``bodydata convert --prior RUN``).

Energy (lengths in the template's frame and millimetres, as the Registrar: target lengths divided by the fixed
landmark scale s0, ``unit`` = 1e-3 template metres; sums are means so the weights do not depend on mesh sizes)::

    E = lambda_reg E_reg + lambda_icp (E_icp + rho E_back) + lambda_lan E_lan + E_code

* (0) start: the similarity from the shared landmarks (Umeyama) of the decoded mean body (zero codes), the
  template's landmark set minus ``ignore_landmarks`` (the crotch, as the Registrar);
* (1) "coarse": p = decoded mesh of (e_s, e_p) (the differentiable ACAP solve), L-BFGS over the codes and the
  similarity, one round per gating distance ``coarse_dists``; no E_reg. ``E_icp`` = mean over template vertices of
  ``h_i (n_t . (x_i - v_t))^2`` (gated closest target vertex, its normal), ``E_back`` = mean over target vertices
  of ``h_j (n_k . (x_j - v_k))^2`` along the target normal (the gated closest template vertex j; covers target
  parts no template vertex is near yet), ``E_lan`` = mean squared landmark distance, and Eq. 15's code prior
  ``E_code = (lambda_beta |e_s|^2 + lambda_theta |e_p|^2) / n`` (Eq. 15 sums squared mm over the n vertices
  with weight 1 against |e|^2 with weight 1; per vertex that is |e|^2 / n; one latent vector: lambda_beta |z|^2 / n);
* (2) "fine": free vertices p starting at the decoded mesh d = d(e_s, e_p), similarity fixed, one round per
  ``fine_dists``: new correspondences, the exact sparse solve for p, then an L-BFGS step on the codes with p
  fixed (the codes follow the vertices, as the Registrar's w does). The regulariser is the **edge difference**
  against the decoded mesh, ``E_reg = sum over edges w_ij |(p_i - p_j) - (d_i - d_j)|^2 / n`` with the ACAP
  edge weights w of the run's features. Why edges and not a Laplacian difference |L(p - d)|^2: d is the
  minimiser of the ACAP energy of the decoded features (Eq. 6, same weights), so the edge difference equals
  Eq. 14's E_prior with the decoder's per-vertex transforms T(e_s, e_p) up to a constant (the ACAP reconstruction
  residual) -- it is the paper's energy, not a new one; it is second order in p (the solve is one sparse SPD
  system with the Registrar's structure) and penalises stretching of the edges, whereas a Laplacian difference is
  fourth order, blind to a smooth drift away from d and badly scaled across mesh resolutions.
  The data weights follow ``fine_landmark_scale`` and ``fine_icp_scale`` (the Registrar's schedule).

Everything runs on the model's device (torch), the free-vertex solve on the CPU or with cholespy on CUDA.
Targets are registered one after the other (``register_batch`` is a loop: the decoder, not the prior's solve,
dominates here).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from bodydata.errors import BodydataError
from bodydata.manifest.status import STATUS_DONE, STATUS_FAILED
from bodydata.registration.icp import Correspondences, TargetMesh, closest
from bodydata.registration.register import HAND_PARTS, RegistrationConfig, RegistrationResult, landmark_start

if TYPE_CHECKING:
    import torch

    from bodydata.model.embedding import BodyEmbedding
    from bodydata.templates.template import Template

__all__ = ["ModelPriorConfig", "ModelPriorError", "ModelPriorRegistrar", "check_run", "register_with_model"]


class ModelPriorError(BodydataError):
    """A run that cannot serve as the registration prior (another template, no vertices); one line."""


_REG = RegistrationConfig()  # the Registrar's defaults: one place for the weights and schedule both use


@dataclass
class ModelPriorConfig:
    """Weights and schedule (the Registrar's names where they mean the same); distances in template metres, angles
    in degrees. lambda_reg : E_reg in the fine stage; shape_weight, pose_weight : Eq. 15's lambda_beta, lambda_theta;
    reverse_weight : rho in the coarse stage, fine_reverse_weight in the fine stage."""

    lambda_icp: float = _REG.lambda_icp
    lambda_lan: float = _REG.lambda_lan
    lambda_reg: float = 1.0
    shape_weight: float = 1.0
    pose_weight: float = 1.0
    # E_back on in the coarse stage too (the Registrar: 0): it covers target parts no template vertex is near yet
    reverse_weight: float = 1.0
    fine_reverse_weight: float = _REG.fine_reverse_weight
    hand_weight: float = _REG.hand_weight
    unit: float = _REG.unit
    max_angle: float = _REG.max_angle
    coarse_dists: tuple = _REG.coarse_dists
    fine_dists: tuple = _REG.fine_dists
    coarse_iters: int = _REG.coarse_iters
    fine_iters: int = 10  # L-BFGS steps on the codes per fine round (the Registrar's are on w)
    fine_landmark_scale: tuple = _REG.fine_landmark_scale
    fine_icp_scale: tuple = _REG.fine_icp_scale
    ignore_landmarks: tuple = _REG.ignore_landmarks
    min_overlap: float = _REG.min_overlap
    max_landmark_error: float = _REG.max_landmark_error
    device: str | None = None


@dataclass
class _Target:
    """One prepared target: mesh + KD-tree, landmark pairs (template ids tl (L,), target ids sl (L,)) and the
    landmark similarity s0, r0 (3, 3), t0 (3,) of the decoded mean body onto it."""

    mesh: TargetMesh
    tl: np.ndarray
    sl: np.ndarray
    s0: float
    r0: np.ndarray
    t0: np.ndarray


class ModelPriorRegistrar:
    """Registers targets onto a trained embedding's template with the embedding as the prior.

    model : a loaded :class:`~bodydata.model.embedding.BodyEmbedding` (its weights are frozen here);
    template : its template (default: the one the run was trained on); a template of another connectivity is a
    :class:`ModelPriorError`. config : :class:`ModelPriorConfig` (its ``device`` is where :meth:`from_run` loads the
model; the registration runs on the model's device).
    """

    def __init__(self, model: BodyEmbedding, template: Template | None = None,
                 config: ModelPriorConfig | None = None):
        import scipy.sparse as sp
        import torch

        from bodydata.features.deformation import edge_weights

        self.config = config or ModelPriorConfig()
        self.model = model.eval().requires_grad_(False)
        self.device = model.device
        self.torch = torch
        tpl = _same_template(model.template, int(model.ctx.n_vertices), template)
        self.template = tpl
        self.rec = model.reconstructor()
        self.n = tpl.n_vertices
        groups = model.net.latent_groups()
        self.n_latent = max(s.stop for s in groups.values())
        weight = np.full(self.n_latent, self.config.shape_weight)
        if model.disentangled:
            weight[groups["pose"]] = self.config.pose_weight
        self.code_weight = torch.as_tensor(weight / self.n, dtype=torch.float64, device=self.device)
        hands = np.isin(np.asarray(tpl.part_labels),
                        [list(tpl.part_names).index(h) for h in HAND_PARTS if h in tpl.part_names])
        self.surface_ids = np.flatnonzero(np.asarray(tpl.surface_mask, bool))
        self.vertex_weight = np.where(hands, self.config.hand_weight, 1.0) * np.asarray(tpl.surface_mask, bool)
        # E_reg's edges: the ACAP weights of the run's features (the decoder's mesh is that energy's minimiser)
        e, w = edge_weights(tpl.vertices, tpl.faces, model.weighting)
        ii, jj = np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]]
        self.laplacian = (sp.diags(np.bincount(ii, weights=np.r_[w, w], minlength=self.n))
                          - sp.csr_matrix((np.r_[w, w], (ii, jj)), shape=(self.n, self.n))).tocsr()
        with torch.no_grad():
            self.mean_body = self.decode(torch.zeros(1, self.n_latent, dtype=torch.float64,
                                                     device=self.device))[0].cpu().numpy()

    @classmethod
    def from_run(cls, run: str | Path, template: Template | None = None, config: ModelPriorConfig | None = None,
                 device: str | None = None) -> ModelPriorRegistrar:
        """The registrar of a run folder of ``bodydata train`` (last checkpoint); errors name the run."""
        from bodydata.model import load

        model = load(run, device=device if device is not None else (config.device if config else None))
        try:
            return cls(model, template, config)
        except ModelPriorError as exc:
            raise ModelPriorError(f"{run}: {exc}") from None

    # ------------------------------------------------------------------ pieces
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, L) -> vertices (B, n, 3) float64 in the decoder's frame (template metres); differentiable."""
        parts = self.model.split(z.to(self.model.f_scale.dtype))
        f = self.model.decode(*parts) if isinstance(parts, tuple) else self.model.decode(parts)
        return self.rec(f)

    def _prepare(self, vertices: np.ndarray, faces: np.ndarray, landmarks: Mapping[str, int]) -> _Target | str:
        start = landmark_start(self.template.landmarks, self.mean_body, vertices, landmarks,
                               self.config.ignore_landmarks)
        if isinstance(start, str):
            return start
        return _Target(TargetMesh(vertices, faces), start.tl, start.sl, start.s0, start.r0, start.t0)

    def _correspond(self, target: TargetMesh, x: np.ndarray, dist: float) -> tuple[Correspondences, Correspondences]:
        """Gated closest vertices template -> target and target -> template surface at ``dist`` (target units)."""
        from scipy.spatial import cKDTree

        from bodydata.mesh.normals import vertex_normals

        xn = vertex_normals(x, self.template.faces)
        fwd = closest(target.tree, target.vertices, target.normals, x, xn, dist, self.config.max_angle)
        sid = self.surface_ids
        back = closest(cKDTree(x[sid]), x[sid], xn[sid], target.vertices, target.normals, dist, self.config.max_angle)
        back.index = sid[back.index]
        return fwd, back

    def _lbfgs(self, leaves: list, energy, max_iter: int) -> tuple[float, int]:
        """Minimise ``energy()`` (a scalar tensor) over ``leaves``; (energy at the start, iterations)."""
        torch = self.torch
        opt = torch.optim.LBFGS(leaves, lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-9, tolerance_change=1e-12)
        first: list[float] = []

        def closure():
            opt.zero_grad()
            with torch.enable_grad():
                e = energy()
                if not torch.isfinite(e):
                    raise FloatingPointError("non-finite energy")
                e.backward()
            if not first:
                first.append(float(e.detach()))
            return e

        opt.step(closure)
        return first[0], int(opt.state[opt._params[0]].get("n_iter", 0))

    # ------------------------------------------------------------------ stages
    def _coarse(self, tg: _Target, history: list, t_start: float) -> tuple[Any, float, np.ndarray, np.ndarray, int]:
        """Stage 1: codes and similarity, p = decoded mesh. Returns (z leaf, s, R, t, iterations)."""
        torch = self.torch
        from bodydata.features.polar import rotation_exp_torch

        cfg, n, dev = self.config, self.n, self.device
        f64 = {"dtype": torch.float64, "device": dev}
        z = torch.zeros(1, self.n_latent, **f64, requires_grad=True)
        omega = torch.zeros(1, 3, **f64, requires_grad=True)
        logs = torch.zeros(1, **f64, requires_grad=True)
        tau = torch.zeros(1, 3, **f64, requires_grad=True)
        r0, t0 = torch.as_tensor(tg.r0, **f64), torch.as_tensor(tg.t0, **f64)
        tv, tn = torch.as_tensor(tg.mesh.vertices, **f64), torch.as_tensor(tg.mesh.normals, **f64)
        u2, m_t = (tg.s0 * cfg.unit) ** 2, len(tg.mesh.vertices)
        tl, sl = torch.as_tensor(tg.tl, device=dev), torch.as_tensor(tg.sl, device=dev)

        def pose(p):
            rot = rotation_exp_torch(omega)[0] @ r0
            s = tg.s0 * torch.exp(logs)
            return s * p @ rot.T + t0 + 0.1 * tg.s0 * tau[0], s, rot

        iters = 0
        for dist in cfg.coarse_dists:
            with torch.no_grad():
                x = pose(self.decode(z)[0])[0].cpu().numpy()
            fwd, back = self._correspond(tg.mesh, x, dist * tg.s0)
            fi = np.flatnonzero(fwd.valid)
            bk = np.flatnonzero(back.valid)
            f_v, f_t = torch.as_tensor(fi, device=dev), torch.as_tensor(fwd.index[fi], device=dev)
            b_v, b_t = torch.as_tensor(back.index[bk], device=dev), torch.as_tensor(bk, device=dev)
            f_w = torch.as_tensor(self.vertex_weight[fi] / (n * u2), **f64)
            b_w = torch.as_tensor(self.vertex_weight[back.index[bk]] / (m_t * u2), **f64)

            def energy():
                x = pose(self.decode(z)[0])[0]
                e_icp = (f_w * (((x[f_v] - tv[f_t]) * tn[f_t]).sum(1) ** 2)).sum()
                e_back = (b_w * (((x[b_v] - tv[b_t]) * tn[b_t]).sum(1) ** 2)).sum()
                e_lan = ((x[tl] - tv[sl]) ** 2).sum() / (len(tg.tl) * u2)
                e_code = (self.code_weight * z[0] ** 2).sum()
                return (cfg.lambda_icp * (e_icp + cfg.reverse_weight * e_back) + cfg.lambda_lan * e_lan + e_code)

            e0, k = self._lbfgs([z, omega, logs, tau], energy, cfg.coarse_iters)
            iters += k
            history.append(("coarse", float(dist), e0, time.perf_counter() - t_start))
        with torch.no_grad():
            _, s, rot = pose(self.decode(z)[0])
            t = (t0 + 0.1 * tg.s0 * tau[0]).cpu().numpy()
        return z, float(s), rot.cpu().numpy(), t, iters

    def _fine(self, tg: _Target, z, s: float, rot: np.ndarray, t: np.ndarray, history: list,
              t_start: float) -> tuple[np.ndarray, int]:
        """Stage 2: free p (exact solve per round, regularised by E_reg towards the decoded mesh), the codes
        following p. Returns (p (n, 3) template frame, iterations)."""
        torch = self.torch
        cfg, n = self.config, self.n
        f64 = {"dtype": torch.float64, "device": self.device}
        with torch.no_grad():
            d = self.decode(z)[0].cpu().numpy()
        p = d.copy()
        y = (tg.mesh.vertices - t) @ rot / s          # target in the template frame
        m = tg.mesh.normals @ rot
        ratio2 = (s / tg.s0) ** 2
        lan = tuple(cfg.fine_landmark_scale) or (1.0,)
        icp = tuple(cfg.fine_icp_scale) or (1.0,)
        lap_t = torch.sparse_coo_tensor(*self._coo(self.laplacian), size=(n, n), check_invariants=False, **f64)
        iters = 0
        for r, dist in enumerate(cfg.fine_dists):
            fwd, back = self._correspond(tg.mesh, s * p @ rot.T + t, dist * tg.s0)
            p = self._solve_p(d, fwd, back, y, m, tg, ratio2, lan[min(r, len(lan) - 1)], icp[min(r, len(icp) - 1)])
            iters += 1
            if cfg.fine_iters > 0:
                pt = torch.as_tensor(p, **f64)

                def energy():
                    diff = pt - self.decode(z)[0]
                    e_reg = (diff * torch.sparse.mm(lap_t, diff)).sum() / (n * cfg.unit ** 2)
                    return cfg.lambda_reg * e_reg + (self.code_weight * z[0] ** 2).sum()

                e0, k = self._lbfgs([z], energy, cfg.fine_iters)
                iters += k
                with torch.no_grad():
                    d = self.decode(z)[0].cpu().numpy()
            else:
                e0 = float("nan")
            history.append(("fine", float(dist), e0, time.perf_counter() - t_start))
        return p, iters

    @staticmethod
    def _coo(a) -> tuple[Any, Any]:
        import torch

        c = a.tocoo()
        return torch.as_tensor(np.vstack([c.row, c.col]).astype(np.int64)), torch.as_tensor(c.data)

    def _solve_p(self, d: np.ndarray, fwd: Correspondences, back: Correspondences, y: np.ndarray, m: np.ndarray,
                 tg: _Target, ratio2: float, lan_scale: float, icp_scale: float) -> np.ndarray:
        """Exact minimiser over p of lambda_reg E_reg + lambda_icp (E_icp + rho E_back) + lambda_lan E_lan (template
        frame, codes and correspondences fixed). Times n u^2 / 2 the normal equations read
        ``(lambda_reg L (x) I3 + D) p = lambda_reg L d + c`` with L the edge-weighted graph Laplacian and D, c the
        3x3 blocks and right-hand sides of the data terms (every data pair j ~ y_k with unit normal m_k
        contributes a (m_k m_k^T) block, every landmark an identity block)."""
        import scipy.sparse as sp
        import torch

        from bodydata.features.reconstruct import SpdFactor

        cfg, n = self.config, self.n
        fi = np.flatnonzero(fwd.valid)
        bk = np.flatnonzero(back.valid)
        # (template vertex, target vertex, projector weight, use the normal?) of every data pair
        vid = np.r_[fi, back.index[bk], tg.tl]
        tid = np.r_[fwd.index[fi], bk, tg.sl]
        a = np.r_[cfg.lambda_icp * icp_scale * self.vertex_weight[fi],
                  cfg.lambda_icp * icp_scale * cfg.fine_reverse_weight * n / len(y) * self.vertex_weight[back.index[bk]],
                  np.full(len(tg.tl), cfg.lambda_lan * lan_scale * n / len(tg.tl))] * ratio2
        blocks = m[tid][:, :, None] * m[tid][:, None, :]
        blocks[len(fi) + len(bk):] = np.eye(3)
        blocks *= a[:, None, None]
        rows = (3 * vid[:, None, None] + np.arange(3)[None, :, None]).repeat(3, 2)
        cols = (3 * vid[:, None, None] + np.arange(3)[None, None, :]).repeat(3, 1)
        big = (cfg.lambda_reg * sp.kron(self.laplacian, sp.identity(3))
               + sp.csr_matrix((blocks.ravel(), (rows.ravel(), cols.ravel())), shape=(3 * n, 3 * n))).tocsr()
        rhs = cfg.lambda_reg * (self.laplacian @ d)
        np.add.at(rhs, vid, np.einsum("kab,kb->ka", blocks, y[tid]))
        fac = SpdFactor(big, self.device)
        sol = fac.solve(torch.as_tensor(rhs.reshape(-1, 1), dtype=torch.float64, device=self.device))
        return sol.reshape(n, 3).cpu().numpy()

    # ------------------------------------------------------------------ public
    def _failed(self, reason: str, seconds: float) -> RegistrationResult:
        nan = np.full((self.n, 3), np.nan)
        return RegistrationResult(nan, nan.copy(), np.zeros(self.n_latent), np.nan, np.eye(3), np.zeros(3), np.nan,
                                  0.0, 0, seconds, STATUS_FAILED, reason)

    def register(self, vertices: np.ndarray, faces: np.ndarray, landmarks: Mapping[str, int]) -> RegistrationResult:
        """vertices : (m, 3) float64 target; faces : (k, 3) int64; landmarks : {name: target vertex id}.

        Returns a :class:`~bodydata.registration.register.RegistrationResult` (``w`` = the fitted codes (L,)
        float64, e_s then e_p). Never raises for a bad fit: failures come back 'failed' with a reason."""
        t_start = time.perf_counter()
        try:
            tg = self._prepare(vertices, faces, landmarks)
        except (ValueError, IndexError, np.linalg.LinAlgError) as exc:
            tg = f"bad target: {type(exc).__name__}: {exc}"
        if isinstance(tg, str):
            return self._failed(tg, time.perf_counter() - t_start)
        history: list = []
        try:
            z, s, rot, t, k1 = self._coarse(tg, history, t_start)
            p, k2 = self._fine(tg, z, s, rot, t, history, t_start)
        except (RuntimeError, ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            return self._failed(f"diverged: {type(exc).__name__}: {exc}", time.perf_counter() - t_start)
        x = s * p @ rot.T + t
        cfg = self.config
        # overlap at the last gating distance used (the Registrar's test of a body that missed the target)
        last = (tuple(cfg.fine_dists) or tuple(cfg.coarse_dists) or (cfg.max_landmark_error,))[-1]
        overlap = float(self._correspond(tg.mesh, x, last * tg.s0)[0].valid.mean())
        lan_err = float(np.linalg.norm(x[tg.tl] - tg.mesh.vertices[tg.sl], axis=1).mean())
        res = RegistrationResult(x, p, z.detach().cpu().numpy()[0].copy(), s, rot, t, lan_err, overlap, k1 + k2,
                                 time.perf_counter() - t_start, history=history)
        if not np.all(np.isfinite(x)):
            res.status, res.reason = STATUS_FAILED, "diverged: non-finite vertices"
        elif overlap < cfg.min_overlap:
            res.status, res.reason = STATUS_FAILED, f"empty overlap: {overlap:.0%} of template vertices near the target"
        elif lan_err / s > cfg.max_landmark_error:
            res.status, res.reason = STATUS_FAILED, f"diverged: mean landmark error {lan_err / s * 1000:.0f} mm"
        else:
            res.status = STATUS_DONE
        return res

    def register_batch(self, targets: Sequence[tuple[np.ndarray, np.ndarray, Mapping[str, int]]],
                       guides: Sequence[np.ndarray | None] | None = None) -> list[RegistrationResult]:
        """One result per (vertices (m, 3), faces (k, 3), landmarks) target, in order (registered one by one).
        ``guides`` (the body-model start's fitted bodies) are not used: the decoder already holds the body's
        articulation, which is what the sparse prior's guide term stands in for."""
        return [self.register(v, f, lm) for v, f, lm in targets]


def _same_template(spec: str | None, n_model: int, template: Template | None) -> Template:
    """``template`` (default: the run's own, ``spec``) when it is the connectivity the run was trained on, else a
    one-line ModelPriorError."""
    from bodydata.templates.template import load_template

    if not spec:
        raise ModelPriorError("the run records no template, so its codes cannot be turned into vertices")
    own = load_template(spec)
    tpl = own if template is None else template
    if tpl.n_vertices != n_model or own.n_vertices != n_model or not np.array_equal(tpl.faces, own.faces):
        raise ModelPriorError(f"the run was trained on template {own.name!r} ({n_model} vertices), not on "
                              f"{tpl.name!r} ({tpl.n_vertices} vertices): give the run's template")
    return tpl


def check_run(run: str | Path, template: Template) -> None:
    """Without loading the network: a complete run folder (last checkpoint) trained on ``template``'s
    connectivity, else a one-line error naming the run (RunError, ModelPriorError)."""
    from bodydata.model.run_format import read_run_card, require_run

    require_run(run, "last")
    info = read_run_card(run).get("template", {})
    try:
        _same_template(info.get("spec"), int(info.get("n_vertices") or 0), template)
    except ModelPriorError as exc:
        raise ModelPriorError(f"{run}: {exc}") from None


def register_with_model(run: str | Path, vertices: np.ndarray, faces: np.ndarray, landmarks: Mapping[str, int],
                        config: ModelPriorConfig | None = None, device: str | None = None) -> RegistrationResult:
    """Register one target mesh with the embedding of ``run`` as the prior (:class:`ModelPriorRegistrar`)."""
    return ModelPriorRegistrar.from_run(run, config=config, device=device).register(vertices, faces, landmarks)
