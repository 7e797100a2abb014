"""Levenberg–Marquardt for Eq. 15: few unknowns (codes, R, t), many vertex residuals, batched Jacobians updated by Broyden between exact ones.

Eq. 15 is a sum of squares ``|r|^2`` with data residuals ``r_i = sqrt(λ) (R p_i(z) + t - q_i)`` (mm) and prior
residuals ``sqrt(λ_β) e_s``, ``sqrt(λ_θ) e_p``. Per mesh the unknowns are the L codes, a rotation vector ω about
the current R (``R <- exp([ω]x) R``, reset after every step) and t: L + 6 numbers against 3n residuals, the shape
Gauss–Newton suits. The Jacobian of the decoded vertices in the codes is by forward differences in float64 (a
float64 copy of the network; a mesh's L + 1 shifted code vectors decoded in one call, cache-sized); the rotation
and translation columns are exact. Normal equations ``(JᵀJ + μ D) δ = -Jᵀr`` per mesh, D
the diagonal of JᵀJ on R, t and its mean over the codes on every code. Each step solves them for five dampings
(μ/100 .. 100 μ) and decodes all five (a decode costs about 1/L of a Jacobian); the lowest Eq. 15 (the float32
decoder the result is reported with) is kept when it is below the current one and its damping becomes μ;
otherwise μ grows 300-fold and the same Jacobian is reused. A mesh stops when a kept step lowers its energy by less than
``tolerance`` (relative), when μ runs away, or after ``FitSettings.steps`` steps (tried, kept or not). Each mesh
is its own problem: the batch only shares decoder calls.

Between exact Jacobians (one every ``FitSettings.jacobian_every`` kept steps) the code part is carried forward by
Broyden's rank-one secant update (:func:`bodydata.secant.broyden_update`) from the kept step and its float64
decode: one decode instead of L + 1. A step that fails on an updated Jacobian is tried again on an exact one before μ grows. Measured
(``benchmarks/bench_fit.py``, paper-size anny-lite dhnn, 8 test meshes, one torch thread, one process): 20 exact steps
2.72 s per mesh and 1.00 mm (max 2.50) from the refined fit; 40 steps with an exact Jacobian every 4, 1.97 s and 0.91
mm (max 2.22); 20 such steps 1.02 s and 1.18 mm.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch

from bodydata.evaluate.metrics import MM_PER_M
from bodydata.secant import broyden_update

if TYPE_CHECKING:
    from bodydata.evaluate.fit import MeshFitter

__all__ = ["lm_fit"]

_STEP = 1e-6            # forward-difference step on the codes (latent units), float64
_MU0 = 1e-3             # starting damping (relative to D)
_MU_MAX = 1e10          # damping past which a mesh is taken as converged (no step lowers the energy)
_TRIALS = torch.tensor([0.01, 0.1, 1.0, 10.0, 100.0], dtype=torch.float64)  # dampings tried per step, times μ
# float64 feature entries per Jacobian decoder call (8 MiB): at least one mesh's L + 1 codes a call, more while they
# stay cache-sized (anny-lite, 8 meshes: 55 ms per mesh and Jacobian against 94 ms for the batch in one call)
_ROWS = 2 ** 20


def _double_model(fitter: "MeshFitter"):
    """A float64 copy of the fitter's embedding (cached on the fitter), for accurate forward differences."""
    m64 = getattr(fitter, "_model64", None)
    if m64 is None:
        from bodydata.model.embedding import BodyEmbedding

        model = fitter.model
        m64 = BodyEmbedding(copy.deepcopy(model.net), model.ctx, model.template, model.weighting)
        m64 = m64.double().to(fitter.device).eval().requires_grad_(False)
        fitter._model64 = m64
    return m64


def _decode64(fitter: "MeshFitter", z: torch.Tensor) -> torch.Tensor:
    """(N, L) float64 codes -> (N, n, 3) float64 vertices through the float64 network and the fitter's solve."""
    m64 = _double_model(fitter)
    parts = m64.split(z)
    f = m64.decode(*parts) if isinstance(parts, tuple) else m64.decode(parts)
    return fitter.rec(f)


def _code_jacobian(fitter: "MeshFitter", z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z (B, L) -> (p (B, n, 3), its derivatives along each code (B, L, n, 3)) float64 by forward differences."""
    bsz, lat = z.shape
    n = fitter.n_vertices
    shifted = z.to(torch.float64)[:, None, :].repeat(1, lat + 1, 1)  # (B, L+1, L): row 0 the base point
    idx = torch.arange(lat, device=z.device)
    shifted[:, idx + 1, idx] += _STEP
    rows = shifted.reshape(-1, lat)
    chunk = (lat + 1) * max(1, _ROWS // (9 * n * (lat + 1)))         # whole meshes a call
    p = torch.empty(len(rows), n, 3, dtype=torch.float64, device=z.device)
    for i in range(0, len(rows), chunk):
        p[i:i + chunk] = _decode64(fitter, rows[i:i + chunk])
    p = p.view(bsz, lat + 1, n, 3)
    return p[:, 0], (p[:, 1:] - p[:, :1]) / _STEP


def _normal_equations(fitter: "MeshFitter", p: torch.Tensor, dp: torch.Tensor, z: torch.Tensor, rot: torch.Tensor,
                      trans: torch.Tensor, target: torch.Tensor, rigid: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """JᵀJ (B, K, K) and Jᵀr (B, K) float64, K = L (+ 6 with the rigid part: ω then t), from the decoded vertices
    p (B, n, 3) and their code derivatives dp (B, L, n, 3) (exact or Broyden-updated)."""
    w = MM_PER_M * fitter.settings.vertex_weight ** 0.5
    bsz, lat = z.shape
    if fitter.markers is not None:
        p, dp, target = p[:, fitter.markers], dp[:, :, fitter.markers], target[:, fitter.markers]
    rt = rot.transpose(1, 2)
    y = p @ rt                                                        # R p (B, m, 3)
    r = (w * (y + trans[:, None, :] - target)).reshape(bsz, -1)      # (B, 3m) mm
    rows = [(w * (dp @ rt[:, None])).reshape(bsz, lat, -1)]          # Jᵀ, code rows (B, L, 3m)
    if rigid:
        x, yy, zz = y.unbind(-1)
        zero = torch.zeros_like(x)
        # d(exp([ω]x) y)/dω_k at ω = 0 is e_k × y; d/dt_k is e_k
        cross = torch.stack([torch.stack([zero, -zz, yy], -1), torch.stack([zz, zero, -x], -1),
                             torch.stack([-yy, x, zero], -1)], 1)      # (B, 3, m, 3)
        unit = torch.eye(3, dtype=y.dtype, device=y.device)[None, :, None, :].expand_as(cross)
        rows += [(w * cross).reshape(bsz, 3, -1), (w * unit).reshape(bsz, 3, -1)]
    jt = torch.cat(rows, 1)                                           # (B, K, 3m)
    hess = jt @ jt.transpose(1, 2)
    grad = (jt @ r[..., None])[..., 0]
    idx = torch.arange(lat, device=z.device)
    hess[:, idx, idx] += fitter.prior
    grad[:, :lat] += fitter.prior * z.to(torch.float64)
    return hess, grad


def lm_fit(fitter: "MeshFitter", z0: torch.Tensor, rot0: torch.Tensor, trans0: torch.Tensor, target: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Minimise Eq. 15 from codes z0 (B, L) float32, rotation rot0 (B, 3, 3), translation trans0 (B, 3) metres onto
    target (B, n, 3) metres. Returns codes (B, L) float32, rotation, translation, steps (B,) int64 and the energy
    history (one (B,) float64 tensor per step, the kept energy after it; its first entry the start's)."""
    from bodydata.features.polar import rotation_exp_torch

    s = fitter.settings
    rigid = s.rigid
    bsz, lat = z0.shape
    dev = z0.device
    z, rot, trans = z0.clone(), rot0.clone(), trans0.clone()
    with torch.no_grad():
        e = fitter.energy(z, rot, trans, target)
    mu = torch.full((bsz,), _MU0, dtype=torch.float64, device=dev)
    active = torch.ones(bsz, dtype=torch.bool, device=dev)
    fresh = torch.ones(bsz, dtype=torch.bool, device=dev)            # the Jacobian must be (re)computed
    stale = torch.zeros(bsz, dtype=torch.bool, device=dev)           # the normal equations must be reassembled
    steps = torch.zeros(bsz, dtype=torch.int64, device=dev)
    k = lat + (6 if rigid else 0)
    hess = torch.zeros(bsz, k, k, dtype=torch.float64, device=dev)
    grad = torch.zeros(bsz, k, dtype=torch.float64, device=dev)
    history = [e.clone()]
    every = max(1, int(s.jacobian_every))
    n = fitter.n_vertices
    p = torch.zeros(bsz, n, 3, dtype=torch.float64, device=dev)      # decoded vertices at z
    dp = torch.zeros(bsz, lat, n, 3, dtype=torch.float64, device=dev)  # their code derivatives, exact or updated
    age = torch.zeros(bsz, dtype=torch.int64, device=dev)              # Broyden updates since the exact Jacobian
    with torch.no_grad():
        for _ in range(s.steps):
            if not bool(active.any()):
                break
            need = torch.nonzero(active & fresh).flatten()
            if len(need):
                p[need], dp[need] = _code_jacobian(fitter, z[need])
                age[need] = 0
            redo = torch.nonzero(active & (fresh | stale)).flatten()
            if len(redo):
                hess[redo], grad[redo] = _normal_equations(fitter, p[redo], dp[redo], z[redo], rot[redo], trans[redo],
                                                           target[redo], rigid)
                fresh[redo] = False
                stale[redo] = False
            a = torch.nonzero(active).flatten()
            na = len(a)
            h = hess[a]
            # damping D: R, t on their own scales (diag JᵀJ), the codes all alike (their mean diagonal): the decoder
            # is about as non-linear along every code, and diag JᵀJ lets the weakly seen codes take steps the linear
            # model cannot predict (anny-lite posed test meshes, 10 steps: 2/3 of the distance to the refined fit left)
            diag = torch.diagonal(h, dim1=1, dim2=2).clamp_min(1e-12).clone()
            diag[:, :lat] = diag[:, :lat].mean(1, keepdim=True)
            # several dampings tried at once, the best kept: decodes are cheap next to the Jacobian
            mus = mu[a, None] * _TRIALS.to(mu)                                # (A, T)
            damped = h[:, None] + torch.diag_embed(mus[..., None] * diag[:, None])
            delta = -torch.linalg.solve(damped, grad[a, None].expand(-1, len(_TRIALS), -1))  # (A, T, K)
            zc = (z[a, None].to(torch.float64) + delta[..., :lat]).to(z.dtype)
            rep = lambda x: x[:, None].expand(-1, len(_TRIALS), *x.shape[1:]).reshape(-1, *x.shape[1:])
            if rigid:
                rc = rotation_exp_torch(delta[..., lat:lat + 3].reshape(-1, 3)) @ rep(rot[a])
                tc = rep(trans[a]) + delta[..., lat + 3:].reshape(-1, 3)
            else:
                rc, tc = rep(rot[a]), rep(trans[a])
            ec = fitter.energy(zc.reshape(-1, lat), rc, tc, rep(target[a])).view(na, -1)
            best = ec.argmin(1)
            sel = torch.arange(na, device=dev)
            ec = ec[sel, best]
            zc, rc, tc = zc[sel, best], rc.view(na, -1, 3, 3)[sel, best], tc.view(na, -1, 3)[sel, best]
            steps[a] += 1
            ok = ec < e[a]
            gain = e[a] - ec
            kept, lost = a[ok], a[~ok]
            # a kept step within the Jacobian's budget updates it by Broyden's secant (one decode, against L + 1
            # for the exact one); the budget spent, the next step starts from an exact Jacobian
            upd = ok & (age[a] + 1 < every)
            ua = a[upd]
            if len(ua):
                # the new point decoded again in float64, as the exact Jacobian is: float32 rounding depends on the
                # batch, and the batch size must not change what a fit returns
                p_new = _decode64(fitter, zc[upd].to(torch.float64))
                old = dp[ua]
                dp[ua] = broyden_update(old.flatten(2), zc[upd].to(torch.float64) - z[ua].to(torch.float64),
                                        (p_new - p[ua]).flatten(1)).view_as(old)
                p[ua] = p_new
                age[ua] += 1
                stale[ua] = True
            fresh[a[ok & ~upd]] = True
            z[kept], rot[kept], trans[kept] = zc[ok], rc[ok], tc[ok]
            done = gain[ok] <= s.tolerance * ec[ok].abs().clamp_min(1e-12)
            e[kept] = ec[ok]
            mu[kept] = mus[sel, best][ok]
            # a failed step on an updated Jacobian is first retried on an exact one; on an exact one μ grows
            retry = lost[age[lost] > 0]
            fresh[retry] = True
            grow = lost[age[lost] == 0]
            mu[grow] = mu[grow] * _TRIALS[-1] * 3.0
            active[kept[done]] = False
            active[grow[mu[grow] > _MU_MAX]] = False
            history.append(e.clone())
    return z, rot, trans, steps, history
