"""Cotangent weights and Laplacian: per-face loops, closed forms, robustness on bad triangles."""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
import scipy.linalg
import trimesh

from bodydata.mesh import cotangent as C
from bodydata.mesh import topology as T
from bodydata.mesh.areas import vertex_areas


def grid(nx, ny, jitter=0.0, seed=0):
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(nx, dtype=float), np.arange(ny, dtype=float), indexing="ij")
    v = np.stack([x.ravel(), y.ravel(), np.zeros(nx * ny)], axis=1)
    interior = (x.ravel() > 0) & (x.ravel() < nx - 1) & (y.ravel() > 0) & (y.ravel() < ny - 1)
    v[interior, :2] += rng.uniform(-jitter, jitter, size=(interior.sum(), 2))
    faces = []
    for i in range(nx - 1):
        for j in range(ny - 1):
            a, b, c, d = i * ny + j, (i + 1) * ny + j, (i + 1) * ny + j + 1, i * ny + j + 1
            faces += [[a, b, c], [a, c, d]] if rng.random() < 0.5 else [[a, b, d], [b, c, d]]
    return v, np.asarray(faces, dtype=np.int64), interior


def sphere(level=2):
    s = trimesh.creation.icosphere(subdivisions=level)
    return np.asarray(s.vertices, dtype=np.float64), np.asarray(s.faces, dtype=np.int64)


def loop_cotangents(v, f):
    out = np.zeros((len(f), 3))
    for fi, tri in enumerate(f.tolist()):
        for k in range(3):
            p = v[tri[k]]
            a, b = v[tri[(k + 1) % 3]] - p, v[tri[(k + 2) % 3]] - p
            ang = math.acos(float(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1)))
            out[fi, k] = 1.0 / math.tan(ang)
    return out


def loop_weights(v, f):
    cot = loop_cotangents(v, f)
    w = defaultdict(float)
    for fi, tri in enumerate(f.tolist()):
        for k in range(3):
            i, j = tri[(k + 1) % 3], tri[(k + 2) % 3]
            w[(min(i, j), max(i, j))] += 0.5 * cot[fi, k]
    return w


def rough_sphere():
    """A sphere with noisy radii: many obtuse triangles, still closed."""
    v, f = sphere(2)
    rng = np.random.default_rng(3)
    return v * rng.uniform(0.8, 1.2, size=(len(v), 1)) + rng.normal(0, 0.03, v.shape), f


@pytest.mark.parametrize("mesh", ["sphere", "rough", "grid"])
def test_cotangents_and_weights_match_loop(mesh):
    v, f = {"sphere": sphere(1), "rough": rough_sphere(), "grid": grid(5, 4, jitter=0.3)[:2]}[mesh]
    cot = C.cotangents(v, f)
    assert cot.shape == f.shape and cot.dtype == np.float64
    assert np.allclose(cot, loop_cotangents(v, f), rtol=1e-9, atol=1e-12)
    e, w = C.cotangent_weights(v, f)
    ref = loop_weights(v, f)
    assert np.array_equal(e, T.edges(f))
    assert np.allclose(w, [ref[tuple(x)] for x in e.tolist()], rtol=1e-9, atol=1e-12)
    if mesh == "rough":
        assert (cot < 0).any() and (w < 0).any()  # obtuse angles present and kept


def test_right_triangle_boundary_weights():
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    f = np.array([[0, 1, 2]])
    assert np.allclose(C.cotangents(v, f), [[0.0, 1.0, 1.0]], atol=1e-15)
    e, w = C.cotangent_weights(v, f)
    # Boundary edges get one cot / 2: (0,1) opposite the 45 deg at v2, (0,2) opposite v1, (1,2) opposite the right angle.
    assert e.tolist() == [[0, 1], [0, 2], [1, 2]]
    assert np.allclose(w, [0.5, 0.5, 0.0], atol=1e-15)


def test_interior_edge_of_two_equilateral_triangles():
    h = math.sqrt(3) / 2
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0.5, h, 0], [0.5, -h, 0]])
    f = np.array([[0, 1, 2], [1, 0, 3]])
    e, w = C.cotangent_weights(v, f)
    wd = {tuple(x): y for x, y in zip(e.tolist(), w)}
    assert math.isclose(wd[(0, 1)], 1 / math.sqrt(3), rel_tol=1e-12)  # 0.5 * (cot 60 + cot 60)
    assert math.isclose(wd[(0, 2)], 0.5 / math.sqrt(3), rel_tol=1e-12)


@pytest.mark.parametrize("mesh", ["sphere", "rough", "grid"])
def test_laplacian_symmetric_zero_rows_psd(mesh):
    v, f = {"sphere": sphere(2), "rough": rough_sphere(), "grid": grid(6, 5, jitter=0.35)[:2]}[mesh]
    lap = C.cotangent_laplacian(v, f)
    assert lap.shape == (len(v), len(v)) and lap.dtype == np.float64
    dense = lap.toarray()
    assert np.allclose(dense, dense.T, atol=0)
    assert np.allclose(dense.sum(axis=1), 0.0, atol=1e-12)
    eig = np.linalg.eigvalsh(dense)
    assert eig.min() > -1e-10 * eig.max()
    # Off-diagonal entries are exactly -w on the edges.
    e, w = C.cotangent_weights(v, f)
    assert np.allclose(dense[e[:, 0], e[:, 1]], -w)


def test_laplacian_kills_linear_functions_on_flat_grid():
    v, f, interior = grid(7, 6, jitter=0.3, seed=5)
    lap = C.cotangent_laplacian(v, f)
    for lin in (v[:, 0], v[:, 1], 2.0 * v[:, 0] - 0.7 * v[:, 1] + 3.0):
        r = lap @ lin
        assert np.allclose(r[interior], 0.0, atol=1e-12)
        assert np.abs(r[~interior]).max() > 1e-3  # boundary rows do not vanish, the test can fail


def test_dirichlet_energy_and_spectrum_of_sphere():
    v, f = sphere(3)
    lap = C.cotangent_laplacian(v, f)
    # integral over the unit sphere of |grad z|^2 = integral of (1 - z^2) = 4 pi - 4 pi / 3.
    z = v[:, 2]
    assert math.isclose(z @ (lap @ z), 8 * math.pi / 3, rel_tol=5e-3)
    # Generalised eigenvalues L x = lambda M x approach l (l + 1): 0, 2 (x3), 6 (x5).
    m = vertex_areas(v, f)
    lam = scipy.linalg.eigh(lap.toarray(), np.diag(m), eigvals_only=True, subset_by_index=[0, 8])
    assert abs(lam[0]) < 1e-8
    assert np.allclose(lam[1:4], 2.0, rtol=1e-2)
    assert np.allclose(lam[4:9], 6.0, rtol=2e-2)


def test_degenerate_and_needle_triangles_stay_finite_and_psd():
    v, f = sphere(1)
    n = len(v)
    # Add a zero-area triangle (collinear), a zero-length edge and a needle (height 1e-13) hanging off the mesh.
    extra_v = np.array([[3.0, 0, 0], [4.0, 0, 0], [5.0, 0, 0], [3.0, 1e-13, 0], [4.0, 0, 0]])
    v2 = np.vstack([v, extra_v])
    f2 = np.vstack([f, [[n, n + 1, n + 2], [n, n + 1, n + 4], [n, n + 2, n + 3]]])
    cot = C.cotangents(v2, f2)
    assert np.isfinite(cot).all()
    assert np.all(cot[-3:] == 0.0)  # the three bad faces are dropped whole
    assert np.allclose(cot[:-3], C.cotangents(v, f))
    lap = C.cotangent_laplacian(v2, f2).toarray()
    assert np.isfinite(lap).all()
    assert np.abs(lap).max() < 1.0 / C.DEGENERATE_EPS
    assert np.allclose(lap, lap.T) and np.allclose(lap.sum(1), 0, atol=1e-12)
    assert np.linalg.eigvalsh(lap).min() > -1e-9
    # Just above the threshold a thin triangle keeps its (large, exact) cotangents.
    thin = np.array([[0.0, 0, 0], [1.0, 0, 0], [0.5, 1e-6, 0]])
    # (acos loses precision here, so compare with the closed form: cot = 0.5 / h at the base,
    # -cot(2 theta) = -(1 - t^2) / (2 t) with t = tan theta = 2 h at the apex.)
    h, t = 1e-6, 2e-6
    assert np.allclose(C.cotangents(thin, np.array([[0, 1, 2]])), [[0.5 / h, 0.5 / h, -(1 - t * t) / (2 * t)]], rtol=1e-9)
