"""Closest points on triangles against brute force; closest points on a mesh against a per-query loop over every face."""
from __future__ import annotations

import numpy as np

from bodydata.mesh.closest import closest_on_triangles, closest_points, point_to_mesh


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


def _sphere(n_theta=12, n_phi=20):
    """A closed UV sphere of radius 1: vertices (n, 3), faces (m, 3), no long thin triangles near the equator."""
    t = np.linspace(0, np.pi, n_theta + 1)[1:-1]
    ph = np.linspace(0, 2 * np.pi, n_phi, endpoint=False)
    tt, pp = np.meshgrid(t, ph, indexing="ij")
    v = np.stack([np.sin(tt) * np.cos(pp), np.sin(tt) * np.sin(pp), np.cos(tt)], -1).reshape(-1, 3)
    v = np.vstack([v, [[0, 0, 1], [0, 0, -1]]])
    north, south = len(v) - 2, len(v) - 1
    f = []
    for i in range(n_theta - 2):
        for j in range(n_phi):
            a, b = i * n_phi + j, i * n_phi + (j + 1) % n_phi
            f += [[a, b, b + n_phi], [a, b + n_phi, a + n_phi]]
    last = (n_theta - 2) * n_phi
    for j in range(n_phi):
        f += [[north, (j + 1) % n_phi, j], [south, last + j, last + (j + 1) % n_phi]]
    return v, np.array(f)


def test_closest_points_match_a_loop_over_every_face():
    v, f = _sphere()
    rng = np.random.default_rng(2)
    q = rng.normal(size=(80, 3))
    q *= rng.uniform(0.5, 1.5, (80, 1)) / np.linalg.norm(q, axis=1, keepdims=True)
    d, face, bary, cp = closest_points(q, v, f, k=8)
    assert np.allclose(np.einsum("ij,ijk->ik", bary, v[f[face]]), cp)
    for i in range(len(q)):
        best = np.inf
        for tri in f:
            b = closest_on_triangles(q[i:i + 1], v[tri[0]][None], v[tri[1]][None], v[tri[2]][None])[0]
            best = min(best, float(np.linalg.norm(b @ v[tri] - q[i])))
        assert np.isclose(d[i], best, atol=1e-12)
        assert np.isclose(np.linalg.norm(cp[i] - q[i]), d[i])
    assert np.allclose(point_to_mesh(q, v, f), d)
