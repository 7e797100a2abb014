"""Reflection-safe polar decomposition and the log/exp maps of rotations, batched (numpy and torch).

Conventions: a rotation's axis-angle vector is ``r = theta * axis`` (radians, right hand), and
``exp(r)`` is Rodrigues' formula. ``log`` returns the principal value, ``theta`` in [0, pi].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodydata.mesh.rotations import skew

__all__ = [
    "polar_decompose",
    "rotation_log",
    "rotation_exp",
    "rotation_exp_torch",
    "sym_to_vec6",
    "vec6_to_sym",
    "sym_to_vec6_torch",
    "vec6_to_sym_torch",
    "AxisAngle",
]

#: Upper-triangle order of the 6 stretch numbers: s11 s12 s13 s22 s23 s33.
SYM6_INDEX = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
_SYM6_FLAT = np.array([0, 1, 2, 4, 5, 8])
_SYM9_FROM6 = np.array([0, 1, 2, 1, 3, 4, 2, 4, 5])


def polar_decompose(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polar decomposition ``T = R S`` with ``R`` a proper rotation, by SVD.

    t : (..., 3, 3) float64.
    Returns ``R (..., 3, 3)`` with det +1 and ``S (..., 3, 3)`` symmetric, ``R @ S == T``.
    ``T = U diag(s) V^T``; R = U V^T and S = V diag(s) V^T. When det(U V^T) < 0 (a reflection,
    which happens when T itself has det < 0) the column of U for the smallest singular value and that
    singular value are negated, so R stays a rotation and S takes the reflection (one negative
    eigenvalue) -- the convention of the ACAP authors' code.
    """
    t = np.asarray(t, dtype=np.float64)
    u, s, vh = np.linalg.svd(t)  # singular values sorted descending: the smallest is the last
    d = np.linalg.det(u @ vh)
    flip = d < 0
    if np.any(flip):
        u = u.copy()
        s = s.copy()
        u[flip, :, 2] *= -1.0
        s[flip, 2] *= -1.0
    r = u @ vh
    sym = np.einsum("...ji,...j,...jk->...ik", vh, s, vh)
    sym = 0.5 * (sym + np.swapaxes(sym, -1, -2))
    return r, sym


@dataclass
class AxisAngle:
    """Principal axis-angle of rotations: ``axis (..., 3)`` unit (zero where theta == 0), ``theta (...,)`` in [0, pi]."""

    axis: np.ndarray
    theta: np.ndarray

    @property
    def vector(self) -> np.ndarray:
        """(..., 3) float64: theta * axis."""
        return self.axis * self.theta[..., None]


def rotation_log(r: np.ndarray, zero_tol: float = 0.0) -> AxisAngle:
    """Principal logarithm of rotation matrices.

    r : (..., 3, 3) float64 rotations.
    Returns :class:`AxisAngle` with theta = arccos((tr R - 1) / 2) in [0, pi]. The axis comes from the
    skew part divided by 2 sin(theta); near theta = pi, where that part vanishes, it is taken from the
    symmetric part (the column of R + R^T - (tr R - 1) I of largest norm), its sign from the skew part.
    Where ``theta <= zero_tol`` (default: exactly 0) the axis is 0 and theta is 0.
    """
    r = np.asarray(r, dtype=np.float64)
    c = np.clip((np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    theta = np.arccos(c)
    w = np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], axis=-1)
    wn = np.linalg.norm(w, axis=-1)
    ok = wn > 1e-12
    axis = np.where(ok[..., None], w / np.where(ok, wn, 1.0)[..., None], 0.0)
    # Near pi the skew part is tiny and noisy: use the symmetric part instead.
    near_pi = theta > np.pi - 1e-3
    if np.any(near_pi):
        rp = r[near_pi]
        tr = np.trace(rp, axis1=-2, axis2=-1)
        b = rp + np.swapaxes(rp, -1, -2) - (tr - 1.0)[:, None, None] * np.eye(3)
        cols = np.linalg.norm(b, axis=-2)  # (k, 3) norm of each column
        pick = np.argmax(cols, axis=-1)
        a = b[np.arange(len(b)), :, pick]
        a = a / np.linalg.norm(a, axis=-1, keepdims=True)
        wp = w[near_pi]
        sgn = np.where(np.einsum("ki,ki->k", a, wp) < 0, -1.0, 1.0)
        axis[near_pi] = a * sgn[:, None]
    zero = (theta <= zero_tol) | ~(ok | near_pi)
    theta = np.where(zero, 0.0, theta)
    axis[zero] = 0.0
    return AxisAngle(axis=axis, theta=theta)


def rotation_exp(r: np.ndarray) -> np.ndarray:
    """Rodrigues: (..., 3) axis-angle vectors -> (..., 3, 3) rotations (any angle, 2 pi periodic)."""
    r = np.asarray(r, dtype=np.float64)
    th = np.linalg.norm(r, axis=-1)
    small = th < 1e-4
    ths = np.where(small, 1.0, th)
    a = np.where(small, 1.0 - th**2 / 6.0, np.sin(ths) / ths)
    b = np.where(small, 0.5 - th**2 / 24.0, (1.0 - np.cos(ths)) / ths**2)
    k = skew(r)
    return np.eye(3) + a[..., None, None] * k + b[..., None, None] * (k @ k)


def rodrigues_coefficients_torch(th2):
    """``a = sin t / t`` and ``b = (1 - cos t) / t^2`` of the squared angle ``th2`` (...,), with their series below
    t^2 = 1e-8 so that both values and gradients stay finite at t = 0."""
    import torch

    small = th2 < 1e-8
    th2s = torch.where(small, torch.ones_like(th2), th2)
    ths = torch.sqrt(th2s)
    a = torch.where(small, 1.0 - th2 / 6.0, torch.sin(ths) / ths)
    b = torch.where(small, 0.5 - th2 / 24.0, (1.0 - torch.cos(ths)) / th2s)
    return a, b


def rotation_exp_torch(r):
    """Rodrigues in torch, differentiable everywhere (series near 0): (..., 3) -> (..., 3, 3)."""
    import torch

    th2 = (r * r).sum(-1)
    a, b = rodrigues_coefficients_torch(th2)
    z = torch.zeros_like(r[..., 0])
    k = torch.stack(
        [
            torch.stack([z, -r[..., 2], r[..., 1]], -1),
            torch.stack([r[..., 2], z, -r[..., 0]], -1),
            torch.stack([-r[..., 1], r[..., 0], z], -1),
        ],
        -2,
    )
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def sym_to_vec6(s: np.ndarray) -> np.ndarray:
    """(..., 3, 3) symmetric -> (..., 6) upper triangle s11 s12 s13 s22 s23 s33."""
    s = np.asarray(s)
    return s.reshape(*s.shape[:-2], 9)[..., _SYM6_FLAT]


def vec6_to_sym(v: np.ndarray) -> np.ndarray:
    """(..., 6) upper triangle -> (..., 3, 3) symmetric."""
    v = np.asarray(v)
    return v[..., _SYM9_FROM6].reshape(*v.shape[:-1], 3, 3)


def sym_to_vec6_torch(s):
    """Torch version of :func:`sym_to_vec6`."""
    import torch

    idx = torch.as_tensor(_SYM6_FLAT, device=s.device)
    return s.reshape(*s.shape[:-2], 9).index_select(-1, idx)


def vec6_to_sym_torch(v):
    """Torch version of :func:`vec6_to_sym`."""
    import torch

    idx = torch.as_tensor(_SYM9_FROM6, device=v.device)
    return v.index_select(-1, idx).reshape(*v.shape[:-1], 3, 3)
