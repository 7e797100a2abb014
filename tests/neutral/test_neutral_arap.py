"""ArapSolver: exact rigid cases, local/global pieces against per-element loops, monotone energy, input errors."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bodydata.neutral.arap import ArapError, ArapSolver


def _grid(k: int = 6):
    """A bumpy open grid: (k*k, 3) vertices, triangles."""
    x, y = np.meshgrid(np.linspace(0, 1, k), np.linspace(0, 1, k))
    z = 0.1 * np.sin(3 * x) * np.cos(2 * y)
    v = np.stack([x.ravel(), y.ravel(), z.ravel()], 1)
    f = []
    for i in range(k - 1):
        for j in range(k - 1):
            a = i * k + j
            f += [[a, a + 1, a + k], [a + 1, a + k + 1, a + k]]
    return v, np.array(f, dtype=np.int64)


def test_rigid_handles_give_the_rigid_motion(anny_lite_template):
    tpl = anny_lite_template
    v, f = tpl.vertices, tpl.faces
    r = Rotation.from_rotvec([0.4, -0.3, 0.9]).as_matrix()
    moved = v @ r.T + np.array([0.1, -0.2, 0.3])
    handles = np.arange(0, len(v), 4)
    solver = ArapSolver(v, f, handles=handles, handle_weight=10.0)
    # Started near the answer (ARAP from far away converges slowly), the rigid motion is the fixed point.
    start = moved + np.random.default_rng(0).normal(scale=0.003, size=v.shape)
    res = solver.solve(v, initial=start, handle_targets=moved[handles], iterations=300, tol=1e-14)
    assert np.abs(res.vertices - moved).max() < 1e-5
    assert np.allclose(res.rotations[::97], r, atol=1e-4)


def test_rotation_targets_rotate_the_rest_shape(anny_lite_template):
    tpl = anny_lite_template
    v = tpl.vertices
    r = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
    solver = ArapSolver(v, tpl.faces)
    res = solver.solve(v, rotation_targets=np.broadcast_to(r, (len(v), 3, 3)), rotation_weights=10.0,
                       iterations=50, tol=1e-10)
    expected = v @ r.T
    expected += res.vertices.mean(0) - expected.mean(0)
    assert res.converged and np.abs(res.vertices - expected).max() < 1e-6


def test_local_and_global_pieces_match_loops():
    v, f = _grid()
    solver = ArapSolver(v, f, weights="cotangent", min_weight=0.01)
    rng = np.random.default_rng(0)
    p = v + rng.normal(scale=0.05, size=v.shape)
    rot = Rotation.random(len(v), random_state=1).as_matrix()
    w = dict(zip(map(tuple, solver.edges.tolist()), solver.weights))
    cov = np.zeros((len(v), 3, 3))
    b = np.zeros((len(v), 3))
    energy = 0.0
    for (i, j), wij in w.items():
        for a, c in ((i, j), (j, i)):
            cov[a] += wij * np.outer(p[a] - p[c], v[a] - v[c])
            b[a] += 0.5 * wij * (rot[a] + rot[c]) @ (v[a] - v[c])
            energy += wij * np.sum((p[a] - p[c] - rot[a] @ (v[a] - v[c])) ** 2)
    assert np.allclose(solver.covariances(v, p), cov)
    assert np.allclose(solver.rhs(v, rot), b)
    assert np.isclose(solver.energy(v, p, rot), energy)
    assert np.all(solver.weights > 0)


def test_energy_never_increases():
    v, f = _grid(8)
    handles = np.array([0, 7, 56, 63])
    solver = ArapSolver(v, f, handles=handles, handle_weight=5.0)
    targets = v[handles] + np.array([[0, 0, 0.3], [0, 0, -0.2], [0.1, 0, 0], [0, 0, 0.25]])
    res = solver.solve(v, handle_targets=targets, iterations=40, tol=0.0)
    e = np.array(res.energy)
    assert len(e) == 40 and np.all(np.diff(e) <= 1e-12 * e[0])


def test_bad_input_raises():
    v, f = _grid()
    with pytest.raises(ArapError):
        ArapSolver(v, f, handles=np.array([0, 999]))
    with pytest.raises(ArapError):
        ArapSolver(v, f, weights="mean-value")
    solver = ArapSolver(v, f, handles=np.array([0, 1]))
    with pytest.raises(ArapError):
        solver.solve(v)  # handles but no targets
    with pytest.raises(ArapError):
        solver.solve(v[:-1], handle_targets=v[:2])
    with pytest.raises(ArapError):
        ArapSolver(v, f).solve(np.full_like(v, np.nan))
