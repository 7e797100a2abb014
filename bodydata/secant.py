"""Broyden's rank-one secant update of a Jacobian, for Gauss-Newton / Levenberg-Marquardt solvers whose exact Jacobian is costly.

Both of the package's least-squares fits with finite-difference Jacobians use it between exact ones: the Eq. 15 fit
of a trained embedding (:mod:`bodydata.evaluate.fit_lm`) and anny's fit to meshes in its own vertex order
(:mod:`bodydata.bodyfit.fit_registered`).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["broyden_update", "refresh_interval_error"]


def refresh_interval_error(every: object) -> str | None:
    """Why ``every`` (accepted steps per exact Jacobian) is not usable, or None: a whole number >= 1 (not a bool)."""
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        return f"jacobian_every must be a whole number >= 1, got {every!r}"
    return None


def broyden_update(jac_t: torch.Tensor, step: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
    """The Jacobian after a step, by Broyden's secant rule, stored transposed (one row per unknown).

    jac_t : (..., K, m) derivatives of the m residuals (or outputs) along each of the K unknowns; step : (..., K) the
    step taken; change : (..., m) the residuals' change along it. Returns ``J + (change - J step) stepᵀ / |step|²``
    transposed: the smallest change of J (Frobenius) that explains the step exactly. A zero step changes nothing.
    """
    s = step.to(jac_t.dtype)
    miss = change.to(jac_t.dtype) - torch.einsum("...km,...k->...m", jac_t, s)
    scale = s / (s * s).sum(-1, keepdim=True).clamp_min(1e-300)
    return jac_t + scale[..., :, None] * miss[..., None, :]
