"""Closed-form checks of the ACAP features: rigid motions, uniform scales, polar/log/exp against references."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.features.acap import AcapExtractor, acap_features
from bodydata.features.polar import polar_decompose, rotation_exp, rotation_log, vec6_to_sym


def _rot(axis, angle):
    a = np.asarray(axis, float)
    return rotation_exp(a / np.linalg.norm(a) * angle)


@pytest.mark.parametrize("angle", [0.3, 2.0, np.pi - 1e-4])
def test_rigid_motion_gives_its_axis_angle_and_identity_stretch(anny_lite_bodies, angle):
    verts, faces = anny_lite_bodies
    q = verts[0]
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    p = q @ _rot(axis, angle).T + np.array([0.2, -1.0, 0.5])
    f = acap_features(q, faces, p)
    np.testing.assert_allclose(f[:, :3], np.broadcast_to(axis * angle, (len(q), 3)), atol=1e-7)
    np.testing.assert_allclose(vec6_to_sym(f[:, 3:]), np.broadcast_to(np.eye(3), (len(q), 3, 3)), atol=1e-9)


def test_uniform_scale_gives_s_identity(anny_lite_bodies):
    verts, faces = anny_lite_bodies
    q = verts[0]
    for s in (0.5, 1.7):
        f = acap_features(q, faces, s * q @ _rot([1, 1, 0], 0.7).T)
        np.testing.assert_allclose(vec6_to_sym(f[:, 3:]), np.broadcast_to(s * np.eye(3), (len(q), 3, 3)), atol=1e-9)
        np.testing.assert_allclose(np.linalg.norm(f[:, :3], axis=1), 0.7, atol=1e-8)


def test_reference_mesh_has_zero_features(sphere):
    q, faces = sphere
    f = acap_features(q, faces, q)
    np.testing.assert_allclose(f[:, :3], 0.0, atol=1e-12)
    np.testing.assert_allclose(f[:, 3:], np.tile([1, 0, 0, 1, 0, 1], (len(q), 1)), atol=1e-12)


def test_polar_against_loop_reference_and_reflections():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(200, 3, 3))
    r, s = polar_decompose(t)
    for k in range(len(t)):  # reference: one matrix at a time
        u, sv, vh = np.linalg.svd(t[k])
        if np.linalg.det(u @ vh) < 0:
            u[:, 2] *= -1
            sv[2] *= -1
        np.testing.assert_allclose(r[k], u @ vh, atol=1e-10)
        np.testing.assert_allclose(s[k], vh.T @ np.diag(sv) @ vh, atol=1e-10)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-10)
    np.testing.assert_allclose(r @ s, t, atol=1e-10)
    np.testing.assert_allclose(s, np.swapaxes(s, 1, 2), atol=1e-12)
    assert np.any(np.linalg.det(t) < 0)  # reflections were exercised


def test_log_exp_round_trip_including_near_pi():
    rng = np.random.default_rng(1)
    axes = rng.normal(size=(500, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.r_[rng.uniform(0, np.pi, 490), np.pi - np.logspace(-9, -3, 10)]
    aa = rotation_log(rotation_exp(axes * angles[:, None]))
    np.testing.assert_allclose(aa.theta, angles, atol=1e-6)
    np.testing.assert_allclose(rotation_exp(aa.vector), rotation_exp(axes * angles[:, None]), atol=1e-7)
    good = angles < np.pi - 1e-3
    np.testing.assert_allclose(aa.axis[good], axes[good], atol=1e-8)


def test_torch_exp_matches_numpy_and_is_smooth_at_zero():
    torch = pytest.importorskip("torch")
    from bodydata.features.polar import rotation_exp_torch

    rng = np.random.default_rng(2)
    r = np.r_[rng.normal(size=(50, 3)) * 2.0, np.zeros((1, 3)), 1e-6 * rng.normal(size=(3, 3))]
    np.testing.assert_allclose(rotation_exp_torch(torch.as_tensor(r)).numpy(), rotation_exp(r), atol=1e-12)
    x = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    rotation_exp_torch(x).sum().backward()
    assert torch.all(torch.isfinite(x.grad))


def test_extractor_rejects_unknown_options(sphere):
    q, faces = sphere
    with pytest.raises(ValueError):
        AcapExtractor(q, faces, compat="matlab")
    with pytest.raises(ValueError):
        AcapExtractor(q, faces, weighting="harmonic")
