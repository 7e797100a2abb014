"""Non-rigid registration of the template onto a target mesh (paper Eq. 14), coarse to fine, in torch (CPU or CUDA).

Minimised energy, over the global similarity (R, s, t), the prior coefficients w and the free vertices p::

    E = E_prior / n + lambda_icp (E_icp + rho E_back) + lambda_lan E_lan + lambda_l1 mean_k |w_k|

* ``E_prior`` = sum over directed template edges of ``c_ij |(p_i - p_j) - T_i(w)(q_i - q_j)|^2``
  (:mod:`bodydata.registration.deform`);
* ``E_icp`` = mean over template vertices of ``h_i (n_t . (x_i - v_t))^2``, ``x = s R p + t``, ``v_t`` the gated
  closest target vertex and ``n_t`` its normal (:mod:`bodydata.registration.icp`); ``h_i`` = ``hand_weight``
  on the template's hand parts (the paper's template fits hands poorly and excludes fingers from its ICP;
  here ``hand_weight`` lets hands count less; default 1: on FAUST, 0.2 left the spread fingers and
  thumb unfitted, tr_reg_001 point-to-mesh 3.2 mm against 2.2 mm with 1), 0 on the template's cavity
  vertices (mouth, tongue: ``Template.surface_mask``; no scan shows them), else 1;
* ``E_back`` (not in the paper) = mean over target vertices of the squared distance to their gated closest
  template (surface) vertex: it covers target regions that no template vertex is near yet (a limb in
  a different pose, the far side of the crotch), which the one-sided E_icp cannot see. Coarse stage:
  point-to-point, weight ``reverse_weight`` (default 0); fine stage: point-to-plane along the target
  normal, weight ``fine_reverse_weight`` (default 1): point-to-point there dragged vertices tangentially
  (anny bodies, MED 11.1 mm against 2.4 mm without), the plane version cannot;
* ``E_lan`` = mean over shared landmarks of ``|x_l - v_l(i)|^2``, minus ``ignore_landmarks`` (default
  the crotch: a saddle whose lowest point is ill-defined front to back; anny's and SMPL's rules land
  70 mm apart on the same FAUST body).

Differences from the paper, and why: every squared length is measured in the template's units (target
lengths divided by the landmark similarity's scale s0, fixed: dividing by the current s would reward a
growing s) and in millimetres (``unit`` = 1e-3 template metres), and the sums are means (per vertex, per landmark,
per component), so lambda_icp, lambda_lan, lambda_l1 keep the paper's defaults (5.0, 1.0, 0.3) with a meaning
independent of mesh size and units; w is in training standard deviations (:mod:`bodydata.registration.prior`),
and |w| is smoothed (sqrt(w^2 + 1e-6)) for L-BFGS.

Schedule: (0) similarity from the landmarks (Umeyama); (1) "coarse": w, R, s, t with p = the ACAP
reconstruction of f(w) (the exact minimiser of E_prior for that w, differentiable through the prefactored
solve), gating distances ``coarse_dists``; (2) "fine": w, R, s, t and free p, gating ``fine_dists``, one
exact sparse solve for p per round followed by L-BFGS on w. Each gating distance is one ICP round:
closest points are found once, then the solves. In the fine rounds the landmark weight is multiplied by
``fine_landmark_scale`` (1, 0.1, 0.01, ...: landmarks place the body, then the surface decides; landmarks
of two body models agree only to 1-2 cm) and the data weight by ``fine_icp_scale`` (1, 1, 1, 3, 10, 30:
the last rounds let the surface follow the scan's detail that the prior does not span). A schedule
shorter than ``fine_dists`` repeats its last value. FAUST tr_reg_000 -> anny, point-to-mesh both ways:
1.98 / 2.67 mm with the paper's fixed weights, 0.69 / 0.60 mm with this schedule.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from bodydata.registration.deform import PriorDeformer
from bodydata.registration.icp import (
    TargetMesh,
    closest,
    point_to_plane,
    point_to_point,
)

__all__ = ["HAND_PARTS", "Registrar", "RegistrationConfig", "RegistrationResult", "similarity_from_points"]

HAND_PARTS = ("hand_L", "hand_R")


@dataclass
class RegistrationConfig:
    """Weights and schedule; distances in template metres, angles in degrees."""

    lambda_icp: float = 5.0
    lambda_lan: float = 1.0
    lambda_l1: float = 0.3
    reverse_weight: float = 0.0
    fine_reverse_weight: float = 1.0
    hand_weight: float = 1.0
    unit: float = 1e-3
    max_angle: float = 60.0
    coarse_dists: tuple = (0.10, 0.05, 0.03, 0.02)
    fine_dists: tuple = (0.03, 0.02, 0.01, 0.01, 0.01, 0.01)
    coarse_iters: int = 50
    fine_iters: int = 30
    fine_landmark_scale: tuple = (1.0, 0.1, 0.01)
    fine_icp_scale: tuple = (1.0, 1.0, 1.0, 3.0, 10.0, 30.0)
    ignore_landmarks: tuple = ("crotch",)
    min_overlap: float = 0.3
    max_landmark_error: float = 0.08
    device: str | None = None


@dataclass
class RegistrationResult:
    """vertices : (n, 3) float64 converted mesh in the target's frame and units (template connectivity);
    template_frame : (n, 3) float64 p; w : (K,); scale, rotation (3, 3), translation (3,) with
    ``vertices = scale p R^T + translation``; landmark_error : mean landmark distance (target units);
    overlap : fraction of template vertices with a gated correspondence at the end; iterations (L-BFGS
    iterations, all stages); seconds; status 'ok' | 'failed'; reason; history of (stage, gating distance, energy, seconds since start)."""

    vertices: np.ndarray
    template_frame: np.ndarray
    w: np.ndarray
    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    landmark_error: float
    overlap: float
    iterations: int
    seconds: float
    status: str = "ok"
    reason: str = ""
    history: list = field(default_factory=list)


def similarity_from_points(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama: s, R (3, 3), t (3,) minimising sum |s R src_k + t - dst_k|^2. src, dst : (L, 3) float64, L >= 3."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    rot = u @ np.diag(d) @ vt
    var = (a ** 2).sum() / len(src)
    s = float((sig * d).sum() / max(var, 1e-300))
    return s, rot, mu_d - s * rot @ mu_s


class Registrar:
    """Registers targets onto one template with one prior (the prefactored solve and the basis are reused).

    template : a :class:`bodydata.templates.template.Template` (vertices, faces, part_labels, part_names, landmarks);
    prior : :class:`bodydata.registration.prior.SparsePrior` of that template.
    """

    def __init__(self, template, prior, config: RegistrationConfig | None = None):
        import torch

        self.config = config or RegistrationConfig()
        self.template = template
        self.deformer = PriorDeformer(prior, template.vertices, template.faces, self.config.device,
                                      weighting=prior.weighting)
        self.device = self.deformer.device
        self.torch = torch
        n = template.n_vertices
        hands = np.isin(np.asarray(template.part_labels),
                        [list(template.part_names).index(h) for h in HAND_PARTS if h in template.part_names])
        # vertices no scanner sees (mouth cavity) get no data term: the prior carries them
        self.surface = np.asarray(template.surface_mask, bool)
        self.surface_ids = np.flatnonzero(self.surface)
        self.vertex_weight = np.where(hands, self.config.hand_weight, 1.0) * self.surface
        self.n = n

    def register(self, vertices: np.ndarray, faces: np.ndarray, landmarks: dict[str, int]) -> RegistrationResult:
        """vertices : (m, 3) float64 target; faces : (k, 3) int64; landmarks : {name: target vertex id}.

        Never raises for a bad fit: failures come back with status 'failed' and a reason."""
        t0 = time.perf_counter()
        names = [k for k in self.template.landmarks if k in landmarks and k not in self.config.ignore_landmarks]
        nan = np.full((self.n, 3), np.nan)
        if len(names) < 4:
            return RegistrationResult(nan, nan, np.zeros(self.deformer.K), np.nan, np.eye(3), np.zeros(3), np.nan, 0.0,
                                      0, time.perf_counter() - t0, "failed",
                                      f"no landmarks: {len(names)} shared with the template (need >= 4)")
        tl = np.array([self.template.landmarks[k] for k in names], np.int64)
        sl = np.array([landmarks[k] for k in names], np.int64)
        target = TargetMesh(vertices, faces)
        s0, r0, t0v = similarity_from_points(self.template.vertices[tl], target.vertices[sl])
        try:
            res = self._optimise(target, tl, sl, s0, r0, t0v)
        except (RuntimeError, ValueError, np.linalg.LinAlgError) as exc:  # numerical breakdown = a failed row
            return RegistrationResult(nan, nan, np.zeros(self.deformer.K), np.nan, np.eye(3), np.zeros(3), np.nan, 0.0,
                                      0, time.perf_counter() - t0, "failed", f"diverged: {exc}")
        res.seconds = time.perf_counter() - t0
        return res

    # ------------------------------------------------------------------ internals
    def _correspond(self, target: TargetMesh, xn: np.ndarray, dist: float):
        """Forward (template -> target) and backward (target -> template) gated closest vertices at ``dist``
        (target units)."""
        from scipy.spatial import cKDTree

        from bodydata.mesh.normals import vertex_normals

        xnrm = vertex_normals(xn, self.template.faces)
        fwd = closest(target.tree, target.vertices, target.normals, xn, xnrm, dist, self.config.max_angle)
        sid = self.surface_ids
        back = closest(cKDTree(xn[sid]), xn[sid], xnrm[sid], target.vertices, target.normals, dist, self.config.max_angle)
        back.index = sid[back.index]
        return fwd, back

    def _optimise(self, target: TargetMesh, tl, sl, s0, r0, t0v) -> RegistrationResult:
        torch = self.torch
        from bodydata.features.polar import rotation_exp_torch

        cfg, dev, n = self.config, self.device, self.n
        f64 = dict(dtype=torch.float64, device=dev)
        tv = torch.as_tensor(target.vertices, **f64)
        tn = torch.as_tensor(target.normals, **f64)
        r0t = torch.as_tensor(r0, **f64)
        w = torch.zeros(self.deformer.K, **f64, requires_grad=True)
        omega = torch.zeros(3, **f64, requires_grad=True)
        logs = torch.zeros(1, **f64, requires_grad=True)
        # translation in units of 0.1 s0 (10 cm of template): comparable in size to w, omega and log s for L-BFGS
        t0t = torch.as_tensor(t0v, **f64)
        tau = torch.zeros(3, **f64, requires_grad=True)
        hw = torch.as_tensor(self.vertex_weight, **f64)
        tl_t = torch.as_tensor(tl, device=dev)
        lan_pts = tv[torch.as_tensor(sl, device=dev)]
        m_t = len(target.vertices)
        u2 = (s0 * cfg.unit) ** 2  # fixed units: dividing by the current s would reward a growing s
        iters = 0
        history = []
        overlap = 0.0
        t_start = time.perf_counter()

        def pose(p):
            rot = rotation_exp_torch(omega) @ r0t
            s = s0 * torch.exp(logs)
            return s * p @ rot.T + t0t + 0.1 * s0 * tau, s, rot

        # ---- stage 1 (coarse): w and the similarity, p = ACAP reconstruction of f(w)
        params = [w, omega, logs, tau]
        for dist in cfg.coarse_dists:
            with torch.no_grad():
                x, s, _ = pose(self.deformer.reconstruct(w[None])[0])
            fwd, back = self._correspond(target, x.cpu().numpy(), dist * s0)
            overlap = float(fwd.valid.mean())
            fv = torch.as_tensor(np.flatnonzero(fwd.valid), device=dev)
            f_idx = torch.as_tensor(fwd.index[fwd.valid], device=dev)
            bv = torch.as_tensor(np.flatnonzero(back.valid), device=dev)
            b_idx = torch.as_tensor(back.index[back.valid], device=dev)
            opt = torch.optim.LBFGS(params, lr=1.0, max_iter=cfg.coarse_iters, history_size=20,
                                    line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

            def closure():
                opt.zero_grad()
                tr = self.deformer.transforms(w[None])
                p = self.deformer.reconstructor.solve(self.deformer.rhs(tr))[0]
                x, _, _ = pose(p)
                e_prior = self.deformer.prior_energy(p[None], tr)[0] / (n * cfg.unit ** 2)
                e_icp = point_to_plane(x[fv], tv[f_idx], tn[f_idx], hw[fv]) / (n * u2)
                e_back = point_to_point(x[b_idx], tv[bv], hw[b_idx]) / (m_t * u2)
                e_lan = point_to_point(x[tl_t], lan_pts, torch.ones(len(tl), **f64)) / (len(tl) * u2)
                e_l1 = torch.sqrt(w * w + 1e-6).mean()
                loss = (e_prior + cfg.lambda_icp * (e_icp + cfg.reverse_weight * e_back)
                        + cfg.lambda_lan * e_lan + cfg.lambda_l1 * e_l1)
                if not torch.isfinite(loss):
                    raise RuntimeError("non-finite energy")
                loss.backward()
                return loss

            loss = opt.step(closure)
            iters += int(opt.state[opt._params[0]].get("n_iter", 0))
            history.append(("coarse", float(dist), float(loss.detach()), time.perf_counter() - t_start))

        # ---- stage 2 (fine): free p (exact linear solve per ICP round) alternating with w (L-BFGS)
        with torch.no_grad():
            p = self.deformer.reconstruct(w[None])[0].cpu().numpy()
            rot = (rotation_exp_torch(omega) @ r0t).cpu().numpy()
            s = float(s0 * torch.exp(logs))
            tt = (t0t + 0.1 * s0 * tau).cpu().numpy()
        y_all = (target.vertices - tt) @ rot / s                       # target in the template frame
        m_all = target.normals @ rot
        ratio2 = (s / s0) ** 2
        lan_scale = tuple(cfg.fine_landmark_scale) or (1.0,)
        icp_scale = tuple(cfg.fine_icp_scale) or (1.0,)
        for r, dist in enumerate(cfg.fine_dists):
            xn = s * p @ rot.T + tt
            fwd, back = self._correspond(target, xn, dist * s0)
            overlap = float(fwd.valid.mean())
            with torch.no_grad():
                b = self.deformer.rhs(self.deformer.transforms(w[None]))[0].cpu().numpy()
            p = self._solve_p(p, b, fwd, back, y_all, m_all, tl, sl, ratio2, m_t,
                              lan_scale[min(r, len(lan_scale) - 1)], icp_scale[min(r, len(icp_scale) - 1)])
            iters += 1
            # w follows the free vertices (the prior's "local step")
            pt = torch.as_tensor(p, **f64)
            opt = torch.optim.LBFGS([w], lr=1.0, max_iter=cfg.fine_iters, history_size=20,
                                    line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

            def closure_w():
                opt.zero_grad()
                tr = self.deformer.transforms(w[None])
                loss = (self.deformer.prior_energy(pt[None], tr)[0] / (n * cfg.unit ** 2)
                        + cfg.lambda_l1 * torch.sqrt(w * w + 1e-6).mean())
                if not torch.isfinite(loss):
                    raise RuntimeError("non-finite energy")
                loss.backward()
                return loss

            loss = opt.step(closure_w)
            iters += int(opt.state[opt._params[0]].get("n_iter", 0))
            history.append(("fine", float(dist), float(loss.detach()), time.perf_counter() - t_start))
        xn = s * p @ rot.T + tt
        lan_err = float(np.linalg.norm(xn[tl] - target.vertices[sl], axis=1).mean())
        res = RegistrationResult(xn, p, w.detach().cpu().numpy(), s, rot, tt, lan_err, overlap, iters, 0.0,
                                 history=history)
        if not np.all(np.isfinite(xn)):
            res.status, res.reason = "failed", "diverged: non-finite vertices"
        elif overlap < cfg.min_overlap:
            res.status, res.reason = "failed", f"empty overlap: {overlap:.0%} of template vertices near the target"
        elif lan_err / s > cfg.max_landmark_error:
            res.status, res.reason = "failed", f"diverged: mean landmark error {lan_err / s * 1000:.0f} mm"
        return res

    def _solve_p(self, p, b, fwd, back, y_all, m_all, tl, sl, ratio2, m_t, lan_scale=1.0,
                 icp_scale=1.0) -> np.ndarray:
        """Exact minimiser over p of E_prior/n + lambda_icp (E_icp + rho E_back) + lambda_lan E_lan for fixed T(w),
        correspondences and similarity (everything in the template frame). Scaled by n u^2 / 2 the normal
        equations are ``(L (x) I3 + D) p = b + d`` with L the c-weighted graph Laplacian, b the ACAP
        right-hand side and D, d the 3x3 blocks of the data terms."""
        import scipy.sparse as sp

        from bodydata.features.reconstruct import SpdFactor

        cfg, n = self.config, self.n
        lap = self._laplacian()
        dblk = np.zeros((n, 3, 3))
        rhs = b.copy()
        # point-to-plane: (lambda/2) h (m m^T)(p - y)
        i = np.flatnonzero(fwd.valid)
        k = fwd.index[i]
        a = 0.5 * cfg.lambda_icp * icp_scale * ratio2 * self.vertex_weight[i]
        mm = m_all[k][:, :, None] * m_all[k][:, None, :]
        np.add.at(dblk, i, a[:, None, None] * mm)
        np.add.at(rhs, i, a[:, None] * np.einsum("kab,kb->ka", mm, y_all[k]))
        # backward point-to-plane along the target normal: (lambda rho n / (2 m_t)) (m_k m_k^T)(p_j - y_k)
        kb = np.flatnonzero(back.valid)
        j = back.index[kb]
        a = 0.5 * cfg.lambda_icp * icp_scale * cfg.fine_reverse_weight * ratio2 * n / m_t * self.vertex_weight[j]
        mm = m_all[kb][:, :, None] * m_all[kb][:, None, :]
        np.add.at(dblk, j, a[:, None, None] * mm)
        np.add.at(rhs, j, a[:, None] * np.einsum("kab,kb->ka", mm, y_all[kb]))
        # landmarks: (lambda_lan n / (2 L)) (p_l - y_l)
        a = 0.5 * cfg.lambda_lan * lan_scale * ratio2 * n / len(tl)
        np.add.at(dblk, tl, a * np.eye(3)[None])
        np.add.at(rhs, tl, a * y_all[sl])
        rows = (3 * np.arange(n)[:, None, None] + np.arange(3)[None, :, None]).repeat(3, 2)
        cols = (3 * np.arange(n)[:, None, None] + np.arange(3)[None, None, :]).repeat(3, 1)
        big = sp.kron(lap, sp.identity(3), format="csr") + sp.csr_matrix(
            (dblk.reshape(-1), (rows.reshape(-1), cols.reshape(-1))), shape=(3 * n, 3 * n))
        import torch

        fac = SpdFactor(big.tocsr(), self.device)
        sol = fac.solve(torch.as_tensor(rhs.reshape(-1, 1), dtype=torch.float64, device=self.device))
        return sol.reshape(n, 3).cpu().numpy()

    def _laplacian(self):
        if getattr(self, "_lap", None) is None:
            import scipy.sparse as sp

            d = self.deformer
            i, j, c = (t.cpu().numpy() for t in (d.ei, d.ej, d.cw))
            self._lap = (sp.diags(np.bincount(i, weights=c, minlength=self.n))
                         - sp.csr_matrix((c, (i, j)), shape=(self.n, self.n))).tocsr()
        return self._lap
