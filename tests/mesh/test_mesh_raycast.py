"""bodydata.mesh.raycast: against the closed-form ray-sphere intersection and a naive per-ray, per-triangle loop."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from bodydata.errors import BodydataError
from bodydata.mesh.raycast import open3d_available, raycast


def icosphere(level: int, radius: float = 1.0):
    s = trimesh.creation.icosphere(subdivisions=level, radius=radius)
    return np.asarray(s.vertices, np.float64), np.asarray(s.faces, np.int64)


def bumpy_mesh(seed: int = 0):
    """A small closed non-convex mesh (icosphere with radial noise): rays meet several layers."""
    v, f = icosphere(2)
    r = 1.0 + 0.25 * np.random.default_rng(seed).uniform(-1, 1, len(v))
    return v * r[:, None], f


def naive(v, f, o, d):
    """One ray at a time, one triangle at a time (Möller–Trumbore), nearest hit, lowest face on a tie."""
    out_t, out_f, out_b = [], [], []
    for oi, di in zip(o, d):
        best, bf, bb = np.inf, -1, None
        for j, (a, b, c) in enumerate(v[f]):
            e1, e2 = b - a, c - a
            p = np.cross(di, e2)
            det = e1 @ p
            if abs(det) < 1e-14:
                continue
            s = oi - a
            u = (s @ p) / det
            q = np.cross(s, e1)
            w = (di @ q) / det
            t = (e2 @ q) / det
            if u >= 0 and w >= 0 and u + w <= 1 and 0 < t < best:
                best, bf, bb = t, j, np.array([1 - u - w, u, w])
        out_t.append(best)
        out_f.append(bf)
        out_b.append(bb if bb is not None else np.full(3, np.nan))
    return np.array(out_t), np.array(out_f), np.array(out_b)


def camera_rays(origin, target, n, spread, rng):
    axis = (target - origin) / np.linalg.norm(target - origin)
    d = axis + spread * rng.normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def test_sphere_hits_match_the_closed_form_within_the_tessellation():
    R = 0.5
    v, f = icosphere(4, R)
    tri = v[f]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    r_in = np.abs((n / np.linalg.norm(n, axis=1, keepdims=True) * tri[:, 0]).sum(1)).min()  # nearest face plane
    assert 0.99 * R < r_in < R
    rng = np.random.default_rng(1)
    origins, dirs = [], []
    for k in range(4):  # four cameras, 2 m from the centre, rays fanning over and past the sphere
        o = 2.0 * np.array([np.cos(k * np.pi / 2), np.sin(k * np.pi / 2), 0.3])
        origins.append(np.repeat(o[None], 5000, 0))
        dirs.append(camera_rays(o, np.zeros(3), 5000, 0.2, rng))
    o, d = np.concatenate(origins), np.concatenate(dirs)
    hits = raycast(v, f, o, d)
    # closed form: |o + t d| = r  ->  t^2 + 2 (o.d) t + |o|^2 - r^2 = 0 (unit d)
    b = (o * d).sum(1)
    c0 = (o * o).sum(1)

    def t_sphere(r):
        disc = b * b - (c0 - r * r)
        return np.where(disc >= 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf), disc >= 0

    t_out, meets_out = t_sphere(R)
    t_in, meets_in = t_sphere(r_in)
    assert meets_in.sum() > 5000 and (~meets_out).sum() > 1000   # both cases are exercised
    assert hits.hit[meets_in].all() and not hits.hit[~meets_out].any()
    h = hits.hit
    assert (hits.distance[h] >= t_out[h] - 1e-12).all()
    assert (hits.distance[meets_in] <= t_in[meets_in] + 1e-12).all()
    radius = np.linalg.norm(hits.points[h], axis=1)
    assert (radius >= r_in - 1e-12).all() and (radius <= R + 1e-12).all()
    # the point is on the face it names, at the barycentrics it names
    on_face = np.einsum("ij,ijk->ik", hits.barycentric[h], v[f[hits.face[h]]])
    np.testing.assert_allclose(on_face, hits.points[h], atol=1e-12)
    assert (hits.face[~h] == -1).all() and np.isinf(hits.distance[~h]).all() and np.isnan(hits.barycentric[~h]).all()


@pytest.mark.parametrize("shared_origins", [True, False])
def test_equals_a_naive_loop_on_a_small_mesh(shared_origins):
    v, f = bumpy_mesh()
    rng = np.random.default_rng(2)
    if shared_origins:  # three cameras, one inside the mesh (rays in every direction)
        cams = [np.array([3.0, 0.5, 0.2]), np.array([-0.4, -2.5, 1.0]), np.zeros(3)]
        o = np.concatenate([np.repeat(c[None], 40, 0) for c in cams])
        d = np.concatenate([camera_rays(cams[0], np.zeros(3), 40, 0.35, rng),
                            camera_rays(cams[1], np.zeros(3), 40, 0.35, rng), rng.normal(size=(40, 3))])
    else:
        o = rng.uniform(-2.5, 2.5, (40, 3))
        d = rng.normal(size=(40, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    hits = raycast(v, f, o, d)
    t, face, bary = naive(v, f, o, d)
    assert 0 < hits.hit.sum() < len(d)
    np.testing.assert_array_equal(hits.hit, face >= 0)
    np.testing.assert_array_equal(hits.face, face)
    np.testing.assert_allclose(hits.distance[hits.hit], t[hits.hit], rtol=1e-10)
    np.testing.assert_allclose(hits.barycentric[hits.hit], bary[hits.hit], atol=1e-9)


def test_t_min_skips_the_near_hits_and_one_origin_broadcasts():
    v, f = icosphere(2)
    d = camera_rays(np.array([0.0, 0.0, 3.0]), np.zeros(3), 50, 0.05, np.random.default_rng(3))
    first = raycast(v, f, np.array([0.0, 0.0, 3.0]), d)
    assert first.hit.all()
    second = raycast(v, f, np.array([0.0, 0.0, 3.0]), d, t_min=first.distance.max() + 1e-6)
    assert second.hit.all() and (second.distance > first.distance + 1.5).all()   # the far side
    assert (second.points[:, 2] < 0).all()


def test_bad_rays_are_one_line_errors():
    v, f = icosphere(1)
    with pytest.raises(BodydataError, match="non-zero"):
        raycast(v, f, np.zeros(3), np.zeros((2, 3)))
    with pytest.raises(BodydataError, match="unknown backend"):
        raycast(v, f, np.zeros(3), np.ones((2, 3)), backend="embree")


def test_open3d_backend_agrees_with_numpy():
    if not open3d_available():
        pytest.skip("open3d is not importable here (optional extra bodydata[open3d]; on Debian it needs libusb-1.0-0)")
    v, f = bumpy_mesh(4)
    rng = np.random.default_rng(5)
    cams = [np.array([3.0, 0.2, 0.1]), np.array([0.1, -3.0, 0.4])]
    o = np.concatenate([np.repeat(c[None], 400, 0) for c in cams])
    d = np.concatenate([camera_rays(c, np.zeros(3), 400, 0.3, rng) for c in cams])
    a = raycast(v, f, o, d)
    b = raycast(v, f, o, d, backend="open3d")
    np.testing.assert_array_equal(a.hit, b.hit)
    same = a.face == b.face
    assert same.mean() > 0.99                      # open3d may pick the other face at a shared edge
    np.testing.assert_allclose(a.distance[a.hit], b.distance[a.hit], rtol=1e-6)
    np.testing.assert_allclose(a.points[a.hit], b.points[a.hit], atol=1e-6)
    np.testing.assert_allclose(a.barycentric[same & a.hit], b.barycentric[same & a.hit], atol=1e-9)
