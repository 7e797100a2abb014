"""Rotations: Rodrigues against a per-element closed form, swing/twist maths, rotation vectors round trip."""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from bodydata.mesh.rotations import axis_angle_matrix, rotation_vectors, skew, swing_rotation, twist_angle


def test_rodrigues_matches_a_plain_loop():
    rng = np.random.default_rng(3)
    axes = rng.normal(size=(5, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    theta = rng.uniform(-3, 3, size=5)
    got = axis_angle_matrix(axes, theta)
    for k in range(5):
        x, y, z = axes[k]
        c, s = np.cos(theta[k]), np.sin(theta[k])
        C = 1 - c
        ref = np.array([
            [c + x * x * C, x * y * C - z * s, x * z * C + y * s],
            [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
            [z * x * C - y * s, z * y * C + x * s, c + z * z * C],
        ])
        assert np.allclose(got[k], ref)


def test_swing_maps_u_to_d_with_the_smallest_angle():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(200, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    d = rng.normal(size=(200, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    d[0], d[1] = u[0], -u[1]  # parallel and antiparallel
    r = swing_rotation(u, d)
    assert np.allclose(np.einsum("kab,kb->ka", r, u), d, atol=1e-9)
    assert np.allclose(np.linalg.det(r), 1.0)
    angle = Rotation.from_matrix(r).magnitude()
    assert np.allclose(angle, np.arccos(np.clip(np.sum(u * d, 1), -1, 1)), atol=1e-7)


def test_twist_angle_of_swing_times_twist():
    rng = np.random.default_rng(1)
    axis = rng.normal(size=(50, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    theta = rng.uniform(-3.0, 3.0, 50)
    twist = axis_angle_matrix(axis, theta)
    perp = np.cross(axis, rng.normal(size=(50, 3)))
    perp /= np.linalg.norm(perp, axis=1, keepdims=True)
    swing = axis_angle_matrix(perp, rng.uniform(-1.0, 1.0, 50))
    # R = swing @ twist: its twist about the axis is theta (swing about a perpendicular axis adds none).
    assert np.allclose(twist_angle(swing @ twist, axis), theta, atol=1e-9)


def test_axis_angle_matrix_broadcasts_like_a_loop():
    # The generator's rig turns (1, k) joint axes by (B, k) angles in one call.
    rng = np.random.default_rng(4)
    axes = rng.normal(size=(1, 6, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    theta = rng.uniform(-3, 3, size=(4, 6))
    got = axis_angle_matrix(axes, theta)
    assert got.shape == (4, 6, 3, 3)
    for b in range(4):
        for k in range(6):
            ref = Rotation.from_rotvec(axes[0, k] * theta[b, k]).as_matrix()
            assert np.allclose(got[b, k], ref, atol=1e-12)


def test_rotation_vectors_invert_axis_angle_matrix():
    rng = np.random.default_rng(5)
    axes = rng.normal(size=(3, 7, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    theta = rng.uniform(0.0, 3.1, size=(3, 7))
    rv = rotation_vectors(axis_angle_matrix(axes, theta))
    assert rv.shape == (3, 7, 3)
    assert np.allclose(rv, axes * theta[..., None], atol=1e-9)
    assert np.allclose(rotation_vectors(np.eye(3)), 0.0)


def test_skew_is_the_cross_product_matrix():
    rng = np.random.default_rng(8)
    v, w = rng.normal(size=(2, 4, 5, 3))
    k = skew(v)
    assert k.shape == (4, 5, 3, 3) and np.allclose(k, -np.swapaxes(k, -1, -2))
    for i in range(4):
        for j in range(5):
            assert np.allclose(k[i, j] @ w[i, j], np.cross(v[i, j], w[i, j]))
