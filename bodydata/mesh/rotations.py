"""Axis-angle rotations (Rodrigues), swing/twist decomposition and rotation vectors of rotation matrices, batched.

The ACAP rotation log/exp maps with their axis conventions live in :mod:`bodydata.features.polar` (they
belong to the feature definition and build on :func:`skew` from here); this module builds rotations from joint axes and angles for the
generator and the neutral-pose segments, and reads rotation vectors back for the generator's truth files.
"""
from __future__ import annotations

import numpy as np

__all__ = ["axis_angle_matrix", "rotation_vectors", "skew", "swing_rotation", "twist_angle"]


def skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrices [v]_x."""
    v = np.asarray(v, dtype=np.float64)
    z = np.zeros(v.shape[:-1])
    return np.stack(
        [
            np.stack([z, -v[..., 2], v[..., 1]], -1),
            np.stack([v[..., 2], z, -v[..., 0]], -1),
            np.stack([-v[..., 1], v[..., 0], z], -1),
        ],
        -2,
    )


def axis_angle_matrix(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) about unit ``axis`` (..., 3) by ``angle`` (...,) radians (Rodrigues)."""
    angle = np.asarray(angle, dtype=np.float64)
    k = skew(axis)
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


def swing_rotation(u: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Smallest rotations (..., 3, 3) taking unit vectors u (..., 3) onto unit vectors d (..., 3).

    Opposite vectors turn by pi about an axis perpendicular to u (any such axis is a minimiser).
    """
    u = np.asarray(u, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    cross = np.cross(u, d)
    sin = np.linalg.norm(cross, axis=-1)
    cos = np.clip(np.sum(u * d, axis=-1), -1.0, 1.0)
    angle = np.arctan2(sin, cos)
    axis = np.where(sin[..., None] > 1e-12, cross / np.maximum(sin, 1e-300)[..., None], 0.0)
    # Parallel/antiparallel: any axis perpendicular to u (the angle is 0 or pi).
    helper = np.where(np.abs(u[..., :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    perp = np.cross(u, helper)
    perp /= np.maximum(np.linalg.norm(perp, axis=-1, keepdims=True), 1e-300)
    axis = np.where(sin[..., None] > 1e-12, axis, perp)
    return axis_angle_matrix(axis, angle)


def twist_angle(rotation: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Angle (...,) radians of the twist component of ``rotation`` (..., 3, 3) about unit ``axis`` (..., 3).

    Swing-twist decomposition: with the rotation's quaternion (w, v), the twist is the rotation by
    ``2 atan2(v . axis, w)`` about ``axis``.
    """
    r = np.asarray(rotation, dtype=np.float64)
    # v = sin(theta/2) n is proportional to the antisymmetric part; w = cos(theta/2) to 1 + trace.
    vx = r[..., 2, 1] - r[..., 1, 2]
    vy = r[..., 0, 2] - r[..., 2, 0]
    vz = r[..., 1, 0] - r[..., 0, 1]
    w = 1.0 + r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2]
    proj = vx * axis[..., 0] + vy * axis[..., 1] + vz * axis[..., 2]
    angle = 2.0 * np.arctan2(proj, w)
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


def rotation_vectors(rotation: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) float64 -> rotation vectors (..., 3) float64 (axis times angle, radians, angle <= pi)."""
    from scipy.spatial.transform import Rotation

    rot = np.asarray(rotation, dtype=np.float64)
    shape = rot.shape[:-2]
    return Rotation.from_matrix(rot.reshape(-1, 3, 3)).as_rotvec().reshape(shape + (3,))
