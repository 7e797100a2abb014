"""Closest points on triangles against brute force; point-to-mesh distances on known geometry."""
from __future__ import annotations

import numpy as np

from bodydata.registration.metrics import (
    closest_on_triangles,
    closest_points,
    landmark_error,
    med,
    surface_distances,
)


def test_closest_on_triangles_brute_force():
    rng = np.random.default_rng(0)
    a, b, c = rng.standard_normal((3, 60, 3))
    p = 2 * rng.standard_normal((60, 3))
    bary = closest_on_triangles(p, a, b, c)
    assert np.all(bary >= -1e-12) and np.allclose(bary.sum(1), 1)
    got = np.linalg.norm(bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c - p, axis=1)
    u = np.stack(np.meshgrid(np.linspace(0, 1, 301), np.linspace(0, 1, 301)), -1).reshape(-1, 2)
    u = u[u.sum(1) <= 1]
    for i in range(60):
        s = a[i] + u[:, :1] * (b[i] - a[i]) + u[:, 1:] * (c[i] - a[i])
        brute = np.linalg.norm(s - p[i], axis=1).min()
        assert got[i] <= brute + 1e-12
        assert got[i] >= brute - 0.01 * np.linalg.norm(b[i] - a[i]) - 0.01 * np.linalg.norm(c[i] - a[i])


def _grid(nx=6):
    x, y = np.meshgrid(np.linspace(0, 1, nx), np.linspace(0, 1, nx))
    v = np.stack([x.ravel(), y.ravel(), np.zeros(nx * nx)], 1)
    f = []
    for i in range(nx - 1):
        for j in range(nx - 1):
            k = i * nx + j
            f += [[k, k + 1, k + nx + 1], [k, k + nx + 1, k + nx]]
    return v, np.array(f)


def test_point_to_mesh_plane_and_identity():
    v, f = _grid()
    pts = np.array([[0.3, 0.4, 0.2], [0.5, 0.5, -0.1], [1.5, 0.5, 0.0], [0.77, 0.13, 0.05]])
    d, face, bary, cp = closest_points(pts, v, f)
    assert np.allclose(d, [0.2, 0.1, 0.5, 0.05])
    assert np.allclose(cp[0], [0.3, 0.4, 0.0]) and np.allclose(cp[2], [1.0, 0.5, 0.0])
    sd = surface_distances(v, f, v, f)
    assert np.allclose(sd.a_to_b, 0) and np.allclose(sd.b_to_a, 0)
    shifted = v + [0, 0, 0.003]
    s = surface_distances(shifted, f, v, f).summary()
    assert np.isclose(s["p2m_mean_mm"], 3.0) and np.isclose(s["m2p_p95_mm"], 3.0)
    assert np.isclose(med(shifted, v), 0.003)
    assert np.isclose(landmark_error(shifted, {"a": 0, "b": 5}, v, {"a": 0, "c": 1}), 0.003)
    assert np.isnan(landmark_error(v, {"a": 0}, v, {"b": 0}))
