"""Face/vertex normals and areas against per-face loops and sphere closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from bodydata.mesh.areas import face_areas, surface_area, vertex_areas
from bodydata.mesh.normals import face_normals, vertex_normals


def sphere(level, radius=1.0):
    s = trimesh.creation.icosphere(subdivisions=level, radius=radius)
    return np.asarray(s.vertices, dtype=np.float64), np.asarray(s.faces, dtype=np.int64)


def rough_sphere():
    v, f = sphere(2)
    rng = np.random.default_rng(7)
    return v * rng.uniform(0.7, 1.3, size=(len(v), 1)), f


def heron(a, b, c):
    la, lb, lc = sorted([np.linalg.norm(b - c), np.linalg.norm(a - c), np.linalg.norm(a - b)], reverse=True)
    # Kahan's stable form of Heron's formula (la >= lb >= lc).
    return 0.25 * math.sqrt(max(0.0, (la + (lb + lc)) * (lc - (la - lb)) * (lc + (la - lb)) * (la + (lb - lc))))


def test_face_and_vertex_areas_match_loop():
    v, f = rough_sphere()
    fa = face_areas(v, f)
    assert fa.shape == (len(f),) and fa.dtype == np.float64
    ref = np.array([heron(*v[t]) for t in f])
    assert np.allclose(fa, ref, rtol=1e-9)
    va = vertex_areas(v, f)
    ref_v = np.zeros(len(v))
    for t, a in zip(f.tolist(), ref):
        for i in t:
            ref_v[i] += a / 3
    assert va.shape == (len(v),)
    assert np.allclose(va, ref_v, rtol=1e-9)
    assert math.isclose(va.sum(), surface_area(v, f), rel_tol=1e-12)
    assert isinstance(surface_area(v, f), float)


def test_isolated_vertex_has_zero_area_and_normal():
    v, f = sphere(0)
    v = np.vstack([v, [[5.0, 5, 5]]])
    assert vertex_areas(v, f)[-1] == 0.0
    assert np.array_equal(vertex_normals(v, f)[-1], [0.0, 0.0, 0.0])


def test_icosphere_area_converges_to_4_pi_r2():
    r = 1.7
    errors = []
    for level in range(1, 6):
        v, f = sphere(level, r)
        errors.append(abs(surface_area(v, f) - 4 * math.pi * r * r) / (4 * math.pi * r * r))
    # Inscribed polyhedron: error shrinks ~4x per subdivision (O(h^2)).
    assert all(e2 < e1 / 3 for e1, e2 in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-3


def test_normals_match_loop():
    v, f = rough_sphere()
    fn = face_normals(v, f)
    vn = vertex_normals(v, f)
    ref_f = np.zeros_like(fn)
    acc = np.zeros_like(v)
    for k, (a, b, c) in enumerate(f.tolist()):
        cr = np.cross(v[b] - v[a], v[c] - v[a])
        ref_f[k] = cr / np.linalg.norm(cr)
        for i in (a, b, c):
            acc[i] += cr  # |cr| = 2 * area: area weighting
    ref_v = acc / np.linalg.norm(acc, axis=1, keepdims=True)
    assert np.allclose(fn, ref_f) and np.allclose(vn, ref_v)
    assert np.allclose(np.linalg.norm(fn, axis=1), 1) and np.allclose(np.linalg.norm(vn, axis=1), 1)


def test_sphere_normals_are_radial():
    v, f = sphere(4, radius=2.0)
    radial = v / np.linalg.norm(v, axis=1, keepdims=True)
    vn = vertex_normals(v, f)
    assert np.min(np.sum(vn * radial, axis=1)) > 1 - 1e-4
    fn = face_normals(v, f)
    centroid = v[f].mean(axis=1)
    assert np.min(np.sum(fn * centroid / np.linalg.norm(centroid, axis=1, keepdims=True), axis=1)) > 1 - 1e-3


def test_zero_area_face_gets_zero_normal():
    v = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]])
    fn = face_normals(v, np.array([[0, 1, 2]]))
    assert np.array_equal(fn, np.zeros((1, 3)))
    assert face_areas(v, np.array([[0, 1, 2]]))[0] == 0.0


@pytest.mark.parametrize("flip", [False, True])
def test_normal_orientation_follows_winding(flip):
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    f = np.array([[0, 2, 1]] if flip else [[0, 1, 2]])
    assert np.allclose(face_normals(v, f), [[0, 0, -1.0 if flip else 1.0]])
