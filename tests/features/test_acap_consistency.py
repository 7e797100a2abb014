"""Rotation consistency: fast graph method vs exact solvers vs brute force; batched equals per mesh."""
from __future__ import annotations

import itertools

import numpy as np

from bodydata.features.acap import AcapExtractor
from bodydata.features.consistency import (
    TWO_PI,
    DualGraph,
    axis_edge_signs,
    axis_objective,
    consistent_rotations,
    tjoin_signs,
    turn_objective,
)
from bodydata.features.consistency_exact import exact_consistent_rotations, solve_axis_signs, solve_turns
from bodydata.features.polar import rotation_exp
from bodydata.mesh.topology import edges as mesh_edges


def two_pi_jump(r: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(e,) how much closer r_i would be to another log of R_j (r_j + 2 pi k r_j/|r_j|, k = -2..2) than to r_j,
    taken both ways: 0 when the pair is consistent, about 2 pi - 2 |r| when a turn jumps."""
    out = np.zeros(len(edges))
    for a, b in ((0, 1), (1, 0)):
        ri, rj = r[edges[:, a]], r[edges[:, b]]
        nj = np.linalg.norm(rj, axis=1, keepdims=True)
        uj = np.where(nj > 1e-12, rj / np.maximum(nj, 1e-300), 0.0)
        d0 = np.linalg.norm(ri - rj, axis=1)
        best = np.min([np.linalg.norm(ri - rj - TWO_PI * k * uj, axis=1) for k in (-2, -1, 0, 1, 2)], axis=0)
        out = np.maximum(out, d0 - best)
    return out


def _octahedron():
    v = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    f = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    return v, f


def _icosahedron():
    import trimesh

    m = trimesh.creation.icosahedron()
    return np.asarray(m.vertices), np.asarray(m.faces, np.int64)


def test_planar_tjoin_and_mip_match_brute_force_on_random_axes():
    rng = np.random.default_rng(3)
    for v, f in (_octahedron(), _icosahedron()):
        n = len(v)
        e = mesh_edges(f)
        dual = DualGraph.from_faces(n, f)
        assert dual.planar
        for _ in range(5):
            axis = rng.normal(size=(n, 3))
            axis /= np.linalg.norm(axis, axis=1, keepdims=True)
            sigma = axis_edge_signs(axis, e)
            best = min(axis_objective(np.array((1,) + s), sigma, e)            # vertex 0 fixed to +1
                       for s in itertools.product((1, -1), repeat=n - 1))
            assert axis_objective(tjoin_signs(sigma, dual, 0, n, "exact"), sigma, e) == best
            signs_mip, gap, _, _ = solve_axis_signs(np.ones(n, np.int8), sigma, e, 0, 10.0)
            assert gap == 0 and axis_objective(signs_mip, sigma, e) == best
            fast = consistent_rotations(axis, rng.uniform(0.1, 3.0, n), e, dual=dual)
            assert fast.axis_cost >= best


def test_turns_exact_matches_brute_force():
    rng = np.random.default_rng(4)
    v, f = _octahedron()
    e = mesh_edges(f)
    for _ in range(5):
        phi = rng.uniform(0, TWO_PI, len(v))
        best = min(turn_objective(phi + TWO_PI * np.array((0,) + k), e)
                   for k in itertools.product((-1, 0, 1), repeat=len(v) - 1))
        dk, gap, _, _ = solve_turns(phi, e, 0, 10.0)
        assert gap == 0
        assert abs(turn_objective(phi + TWO_PI * dk, e) - best) < 1e-9


def test_fast_equals_exact_on_smooth_twist(sphere):
    # a twist about z growing to 5 rad: angles beyond pi, axes all +z or flipped; the unique consistent logs
    q, faces = sphere
    ang = 2.5 * (q[:, 2] + 1.0)
    r_true = np.zeros_like(q)
    r_true[:, 2] = ang
    p = np.einsum("nij,nj->ni", rotation_exp(r_true), q)
    ext = AcapExtractor(q, faces, consistency="fast")
    fast = ext(p)
    exact = AcapExtractor(q, faces, consistency="exact")(p)
    assert fast.axis_cost[0] == exact.axis_cost[0] == 0
    assert abs(fast.turn_cost[0] - exact.turn_cost[0]) < 1e-9
    np.testing.assert_allclose(fast.f, exact.f, atol=1e-12)
    r = fast.f[0, :, :3]
    assert two_pi_jump(r, ext.edges).max() < 1e-9                 # no 2 pi jump anywhere
    assert np.linalg.norm(r, axis=1).max() > 4.0                  # the large angles are kept


def test_fast_is_near_exact_on_posed_bodies(anny_lite_bodies):
    verts, faces = anny_lite_bodies
    fast = AcapExtractor(verts[0], faces)(verts)
    exact = AcapExtractor(verts[0], faces, consistency="exact", exact_time_limit=30)(verts)
    assert np.all(exact.axis_cost <= fast.axis_cost)
    assert np.all(fast.axis_cost - exact.axis_cost <= 0.25 * np.maximum(exact.axis_cost, 4))
    assert np.all(exact.info["exact_gaps"] == 0)


def test_batched_equals_per_mesh(anny_lite_bodies):
    verts, faces = anny_lite_bodies
    ext = AcapExtractor(verts[0], faces)
    batched = ext(verts)
    for b in range(len(verts)):
        np.testing.assert_allclose(ext(verts[b]).f[0], batched.f[b], atol=1e-12)


def test_deformation_gradient_matches_per_vertex_loop(sphere):
    q, faces = sphere
    rng = np.random.default_rng(5)
    p = q + 0.05 * rng.normal(size=q.shape)
    ext = AcapExtractor(q, faces, normal_scale=0.0)
    t = ext.fit.gradients(p)
    e, w = ext.fit.edges, ext.fit.weights
    for i in range(0, len(q), 17):  # reference: weighted least squares one vertex at a time
        nb = np.r_[e[e[:, 0] == i, 1], e[e[:, 1] == i, 0]]
        wi = np.r_[w[e[:, 0] == i], w[e[:, 1] == i]]
        d = q[nb] - q[i]
        m = p[nb] - p[i]
        ti = np.linalg.lstsq(np.sqrt(wi)[:, None] * d, np.sqrt(wi)[:, None] * m, rcond=None)[0].T
        np.testing.assert_allclose(t[i], ti, atol=1e-9)


def test_compat_anchor_keeps_vertex0_principal(sphere):
    q, faces = sphere
    p = np.einsum("nij,nj->ni", rotation_exp(np.c_[0 * q[:, :2], 2.5 * (q[:, 2] + 1.0)]), q)
    res = exact_consistent_rotations(*_aa(AcapExtractor(q, faces), p), AcapExtractor(q, faces).edges, faces, anchor=0)
    from bodydata.features.polar import rotation_log

    aa0 = rotation_log(rotation_exp(res.r[0]))
    np.testing.assert_allclose(res.r[0], aa0.vector, atol=1e-9)


def _aa(ext, p):
    from bodydata.features.polar import polar_decompose, rotation_log

    rot, _ = polar_decompose(ext.fit.gradients(p))
    aa = rotation_log(rot)
    return aa.axis, aa.theta
