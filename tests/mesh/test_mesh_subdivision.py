"""Jittered midpoint subdivision: counts, exact barycentric map against a per-vertex loop, plain midpoints, normal guard."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.errors import MeshError
from bodydata.mesh.normals import face_normals
from bodydata.mesh.subdivision import jittered_subdivision
from bodydata.mesh.topology import edges


def _octahedron():
    v = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)
    f = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    return v, f


def test_without_jitter_corners_stay_and_edge_points_lie_on_their_edge():
    v, f = _octahedron()
    rm = jittered_subdivision(f, len(v), np.random.default_rng(0), "octa", 0.0, 0.0)
    e = edges(f)
    assert len(rm.faces) == 4 * len(f) and len(rm.face_ids) == len(v) + len(e)
    out = rm.apply(v)
    assert np.allclose(out[: len(v)], v, atol=1e-15)
    for k, (i, j) in enumerate(e):  # the point of unique edge k is vertex n + k: on the edge, within 0.1 of its middle
        d = v[j] - v[i]
        s = float((out[len(v) + k] - v[i]) @ d / (d @ d))
        assert 0.4 - 1e-12 <= s <= 0.6 + 1e-12
        assert np.allclose(out[len(v) + k], v[i] + s * d, atol=1e-15)
    # Every new triangle keeps the orientation of the source triangle it lies in.
    assert np.all(np.einsum("ij,ij->i", face_normals(out, rm.faces), face_normals(v, f)[np.tile(np.arange(len(f)), 4)]) > 0.99)


def test_jittered_map_is_exact_for_any_body_and_batched():
    v, f = _octahedron()
    rm = jittered_subdivision(f, len(v), np.random.default_rng(1), "octa")
    assert np.allclose(rm.barycentrics.sum(1), 1.0) and rm.barycentrics.min() >= 0.0
    bodies = np.random.default_rng(2).normal(size=(3, len(v), 3))
    got = rm.apply(bodies)
    for b in range(3):
        for k in range(len(rm.face_ids)):
            corners = bodies[b][f[rm.face_ids[k]]]
            assert np.allclose(got[b, k], rm.barycentrics[k] @ corners, atol=1e-14)
    out = rm.apply(v)
    assert np.min(np.linalg.norm(out[: len(v)] - v, axis=1)) > 0.0  # jittered corners moved off the source vertices


def test_reference_guard_restores_triangles_whose_normal_flips():
    v, f = _octahedron()
    # A huge jitter flips triangles; with the body as reference every new normal stays within 60 degrees of the plain one.
    rng_args = dict(corner_jitter=0.95, edge_jitter=0.95)
    rm = jittered_subdivision(f, len(v), np.random.default_rng(3), "octa", reference_vertices=v, **rng_args)
    plain = jittered_subdivision(f, len(v), np.random.default_rng(3), "octa", 0.0, 0.0)
    cos = np.einsum("ij,ij->i", face_normals(rm.apply(v), rm.faces), face_normals(plain.apply(v), plain.faces))
    assert cos.min() >= 0.5


def test_unused_vertex_is_a_mesh_error():
    v, f = _octahedron()
    with pytest.raises(MeshError, match="vertices without faces"):
        jittered_subdivision(f, len(v) + 1, np.random.default_rng(0), "octa")
