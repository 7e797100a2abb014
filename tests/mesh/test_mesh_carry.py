"""Carrying surface points between two meshes of one connectivity: exact under an affine motion, equal to a per-point loop."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.errors import MeshError
from bodydata.mesh.carry import carry, place
from bodydata.mesh.closest import closest_on_triangles


def _grid(n=6):
    """A bumpy height-field patch: vertices (n*n, 3), faces (2(n-1)^2, 3)."""
    x, y = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n), indexing="ij")
    v = np.stack([x, y, 0.1 * np.sin(3 * x) * np.cos(2 * y)], -1).reshape(-1, 3)
    f = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, (i + 1) * n + j, (i + 1) * n + j + 1, i * n + j + 1
            f += [[a, b, c], [a, c, d]]
    return v, np.array(f)


def test_carry_is_exact_under_an_affine_motion():
    rng = np.random.default_rng(0)
    v, f = _grid()
    a = np.eye(3) + 0.3 * rng.standard_normal((3, 3))
    dst = v @ a.T + np.array([0.5, -1.0, 2.0])
    on = place(rng.integers(0, len(f), 40), rng.dirichlet(np.ones(3), 40), v, f)  # points on the source surface
    assert np.allclose(carry(on, v, dst, f), on @ a.T + np.array([0.5, -1.0, 2.0]), atol=1e-10)


def test_carry_equals_a_loop_over_every_face():
    rng = np.random.default_rng(1)
    v, f = _grid()
    dst = v + 0.05 * rng.standard_normal(v.shape)
    pts = np.c_[rng.uniform(0.05, 0.95, (30, 2)), rng.uniform(-0.2, 0.2, 30)]
    got = carry(pts, v, dst, f)
    for k, p in enumerate(pts):
        bary = closest_on_triangles(np.repeat(p[None], len(f), 0), v[f[:, 0]], v[f[:, 1]], v[f[:, 2]])
        d = np.linalg.norm(np.einsum("fj,fjc->fc", bary, v[f]) - p, axis=1)
        best = int(np.argmin(d))
        assert np.allclose(got[k], bary[best] @ dst[f[best]], atol=1e-12)


def test_carry_refuses_two_connectivities():
    v, f = _grid()
    with pytest.raises(MeshError, match="not one connectivity"):
        carry(v[:3], v, v[:-1], f)
