"""bodydata.mesh.pointcloud: PCA normals against closed forms (plane, sphere, torus), orientation, voxel means."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.errors import BodydataError
from bodydata.mesh.pointcloud import estimate_normals, orient_normals, pca_normals, voxel_downsample
from bodydata.mesh.raycast import open3d_available


def sphere_points(n, radius=0.4, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 3))
    return radius * x / np.linalg.norm(x, axis=1, keepdims=True)


def torus_points(n, R=1.0, r=0.3, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0, 2 * np.pi, (2, n))
    ring = np.stack([np.cos(a), np.sin(a), np.zeros(n)], 1)
    normal = np.cos(b)[:, None] * ring + np.sin(b)[:, None] * np.array([0.0, 0.0, 1.0])
    return R * ring + r * normal, normal


def test_plane_normals_are_exact_and_face_the_viewpoint():
    rng = np.random.default_rng(1)
    uv = rng.uniform(-1, 1, (2000, 2))
    e1, e2 = np.array([1.0, 2.0, 0.5]), np.array([-0.3, 0.1, 1.0])
    e2 -= e1 * (e1 @ e2) / (e1 @ e1)
    p = uv[:, :1] * e1 + uv[:, 1:] * e2 + np.array([0.2, -0.1, 3.0])
    true_n = np.cross(e1, e2) / np.linalg.norm(np.cross(e1, e2))
    view = p + 2.0 * true_n                                   # every point seen from the +n side
    n = estimate_normals(p, k=10, viewpoints=view)
    np.testing.assert_allclose(n, np.broadcast_to(true_n, n.shape), atol=1e-9)
    n_other = estimate_normals(p, k=10, viewpoints=p.mean(0) - 2.0 * true_n)   # one viewpoint for all
    np.testing.assert_allclose(n_other, np.broadcast_to(-true_n, n.shape), atol=1e-9)


def test_sphere_normals_are_radial_within_the_neighbourhood_bound_and_outward():
    p = sphere_points(20000, 0.4)
    n = estimate_normals(p, k=12)
    cos = (n * p / 0.4).sum(1)
    assert (cos > 0).all()                                    # propagation: outward everywhere
    # k = 12 neighbours of 20,000 uniform points span a cap of angle ~ sqrt(12 / 20000 * 4): tilt far below it
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 3.0


def test_propagation_orients_the_inside_of_a_torus_where_the_centroid_rule_fails():
    p, true_n = torus_points(30000)
    n = estimate_normals(p, k=12)
    cos = (n * true_n).sum(1)
    assert (cos > 0.99).all()
    away = ((p - p.mean(0)) * true_n).sum(1) < 0             # points whose outward normal faces the centroid
    assert away.mean() > 0.2                                   # the centroid rule alone would get these wrong


def test_pca_normals_are_a_per_point_loop_and_estimate_normals_up_to_the_sign():
    from scipy.spatial import cKDTree

    p, _ = torus_points(600, seed=5)
    raw = pca_normals(p, k=9)
    _, nn = cKDTree(p).query(p, k=9)
    for i in range(len(p)):                                   # naive: smallest-eigenvalue direction, one at a time
        q = p[nn[i]] - p[nn[i]].mean(0)
        w, v = np.linalg.eigh(q.T @ q)
        assert abs(raw[i] @ v[:, 0]) == pytest.approx(1.0, abs=1e-9)
    oriented = estimate_normals(p, k=9)
    np.testing.assert_allclose(np.abs((raw * oriented).sum(1)), 1.0, atol=1e-12)
    np.testing.assert_allclose(pca_normals(p, k=9, tree=cKDTree(p)), raw, atol=0)
    with pytest.raises(BodydataError, match="pca_normals: need at least 3 points"):
        pca_normals(np.zeros((2, 3)))


def test_orient_normals_of_separate_pieces():
    a = sphere_points(3000, 0.2, seed=3) + [1.0, 0, 0]
    b = sphere_points(3000, 0.2, seed=4) - [1.0, 0, 0]
    p = np.concatenate([a, b])
    true_n = np.concatenate([a - [1.0, 0, 0], b + [1.0, 0, 0]]) / 0.2
    signs = np.where(np.random.default_rng(5).random(len(p)) < 0.5, -1.0, 1.0)
    n = orient_normals(p, true_n * signs[:, None])
    np.testing.assert_allclose(n, true_n, atol=1e-12)


def naive_voxel_means(p, voxel):
    lo = p.min(0) - 0.5 * voxel
    groups = {}
    for x in p:
        groups.setdefault(tuple(np.floor((x - lo) / voxel).astype(int)), []).append(x)
    keys = sorted(groups)
    return np.array([np.mean(groups[k], 0) for k in keys]), np.array([len(groups[k]) for k in keys])


def test_voxel_downsample_equals_per_voxel_means():
    p = np.random.default_rng(6).uniform(0, 0.5, (3000, 3))
    ds = voxel_downsample(p, 0.1)
    mean, count = naive_voxel_means(p, 0.1)
    np.testing.assert_allclose(ds.points, mean, atol=1e-12)
    np.testing.assert_array_equal(ds.counts, count)
    np.testing.assert_allclose(ds.points[ds.voxel_of], p, atol=0.1 * np.sqrt(3))
    assert ds.counts.sum() == len(p)


def test_voxel_downsample_of_a_sphere_keeps_it_on_the_sphere_with_normals():
    p = sphere_points(50000, 0.4)
    ds = voxel_downsample(p, 0.02, normals=p / 0.4)
    assert ds.counts.sum() == len(p) and len(ds.points) < len(p) / 5
    r = np.linalg.norm(ds.points, axis=1)
    # a voxel's mean lies in the hull of its sphere points: inside the ball, within the sagitta of a cap
    # whose chord is the voxel's diagonal
    half = 0.02 * np.sqrt(3) / 2
    assert (r <= 0.4 + 1e-12).all() and (r >= np.sqrt(0.4 ** 2 - half ** 2) - 1e-12).all()
    np.testing.assert_allclose(np.linalg.norm(ds.normals, axis=1), 1.0, atol=1e-12)
    assert ((ds.normals * ds.points).sum(1) / r).min() > 0.99


def test_bad_input_is_a_one_line_error():
    with pytest.raises(BodydataError, match=r"\(n, 3\)"):
        estimate_normals(np.zeros((5, 2)))
    with pytest.raises(BodydataError, match="voxel size"):
        voxel_downsample(np.zeros((5, 3)), 0.0)


def test_open3d_backend_agrees_with_numpy():
    if not open3d_available():
        pytest.skip("open3d is not importable here (optional extra bodydata[open3d]; on Debian it needs libusb-1.0-0)")
    p = sphere_points(5000, 0.4, seed=7)
    a = estimate_normals(p, k=12)
    b = estimate_normals(p, k=12, backend="open3d")
    np.testing.assert_allclose(a, b, atol=1e-6)
    da = voxel_downsample(p, 0.05, normals=a)
    db = voxel_downsample(p, 0.05, normals=a, backend="open3d")
    np.testing.assert_allclose(da.points, db.points, atol=1e-12)
    np.testing.assert_allclose(da.normals, db.normals, atol=1e-12)


@pytest.mark.parametrize("n_points", [20000, 50000])
def test_a_scanned_body_on_its_floor_gets_outward_normals(anny_lite_template, n_points):
    """The floor and the body join into one smoothly oriented piece at some resolutions; the flux alone would
    then turn the body inward (the floor, below the centroid, outweighs it); the open-side vote does not."""
    from bodydata.mesh.normals import face_normals
    from bodydata.mesh.scanner import ScannerConfig, virtual_scan

    v, f = np.asarray(anny_lite_template.vertices), np.asarray(anny_lite_template.faces)
    s = virtual_scan(v, f, ScannerConfig(n_points=n_points, noise_mm=1.0))
    n = estimate_normals(s.points)
    body = s.on_body
    agree = (n[body] * face_normals(v, f)[s.face[body]]).sum(1) > 0
    assert agree.mean() > 0.97
