"""bodydata.mesh.scanner: the virtual scanner's truth, noise model, holes, floor, triangulation and determinism."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from bodydata.errors import BodydataError
from bodydata.mesh.scanner import ScannerConfig, virtual_scan


def sphere(level=4, radius=0.3):
    s = trimesh.creation.icosphere(subdivisions=level, radius=radius)
    return np.asarray(s.vertices, np.float64), np.asarray(s.faces, np.int64)


@pytest.fixture(scope="module")
def body(anny_lite_template):
    # anny-lite's rest mesh, z up, metres
    return np.asarray(anny_lite_template.vertices, np.float64), np.asarray(anny_lite_template.faces, np.int64)


def test_noise_free_scan_of_a_sphere_is_on_it_and_each_sensor_sees_its_side():
    v, f = sphere()
    R = 0.3
    s = virtual_scan(v, f, ScannerConfig(n_points=8000, noise_mm=0.0, floor=False, max_incidence=90.0))
    assert 0.9 * 8000 < len(s.points) < 1.1 * 8000 and s.n_grazing == 0
    tri = v[f]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    r_in = np.abs((n / np.linalg.norm(n, axis=1, keepdims=True) * tri[:, 0]).sum(1)).min()
    r = np.linalg.norm(s.points, axis=1)
    assert (r >= r_in - 1e-12).all() and (r <= R + 1e-12).all()
    np.testing.assert_allclose(s.points, s.surface, atol=1e-12)
    on_face = np.einsum("ij,ijk->ik", s.barycentric, v[f[s.face]])
    np.testing.assert_allclose(on_face, s.surface, atol=1e-12)
    # a sensor sees only the cap facing it: the part of the sphere with p.(c - p) > 0, c its position
    c = s.sensors[s.sensor]
    assert ((s.points * (c - s.points)).sum(1) > -1e-9).all()
    assert len(s.sensors) == 4 and set(np.unique(s.sensor)) == {0, 1, 2, 3}


def test_noise_follows_the_depth_squared_model_and_the_seed(body):
    v, f = body
    cfg = ScannerConfig(n_points=20000, noise_mm=2.0, floor=False)
    s = virtual_scan(v, f, cfg)
    d = s.surface - s.sensors[s.sensor]
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    along = ((s.points - s.surface) * d).sum(1)
    np.testing.assert_allclose(s.points - s.surface, along[:, None] * d, atol=1e-12)   # on the ray
    zscore = along / s.noise_sigma
    assert abs(zscore.mean()) < 0.05 and abs(zscore.std() - 1.0) < 0.05
    # sigma of the depth z grows with z^2: sigma_ray * cos(ray, axis) = 2 mm * (z / distance)^2
    centre_xy = np.r_[0.5 * (v.min(0) + v.max(0))[:2], 0.0]
    axis = centre_xy - s.sensors[s.sensor] * [1, 1, 0]
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    cos_axis = (d * axis).sum(1)
    z = np.linalg.norm(s.surface - s.sensors[s.sensor], axis=1) * cos_axis
    np.testing.assert_allclose(s.noise_sigma * cos_axis, 2e-3 * (z / cfg.distance) ** 2, rtol=1e-9)
    again = virtual_scan(v, f, cfg)
    np.testing.assert_array_equal(again.points, s.points)
    other = virtual_scan(v, f, ScannerConfig(n_points=20000, noise_mm=2.0, floor=False, seed=1))
    assert not np.allclose(other.points, s.points)


def test_grazing_hits_are_holes(body):
    v, f = body
    s = virtual_scan(v, f, ScannerConfig(n_points=20000, max_incidence=60.0, floor=False, noise_mm=0.0))
    fn = np.cross(*(v[f[s.face]][:, i] - v[f[s.face]][:, 0] for i in (1, 2)))
    fn /= np.linalg.norm(fn, axis=1, keepdims=True)
    d = s.surface - s.sensors[s.sensor]
    cos = np.abs((fn * d).sum(1)) / np.linalg.norm(d, axis=1)
    assert cos.min() >= np.cos(np.deg2rad(60.0)) - 1e-9
    assert 0.05 < s.hole_fraction < 0.6
    wide = virtual_scan(v, f, ScannerConfig(n_points=20000, max_incidence=89.0, floor=False, noise_mm=0.0))
    assert wide.hole_fraction < s.hole_fraction / 3


@pytest.mark.parametrize("up_axis", ["+z", "-y"])
def test_floor_lies_under_the_feet_of_the_up_axis(body, up_axis):
    v, f = body
    if up_axis == "-y":          # the same body with its head towards -y
        v = v @ np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]).T
    up = {"+z": np.array([0, 0, 1.0]), "-y": np.array([0, -1.0, 0])}[up_axis]
    s = virtual_scan(v, f, ScannerConfig(n_points=20000, up_axis=up_axis, noise_mm=0.0))
    floor = ~s.on_body
    assert 0.02 < floor.mean() < 0.5
    np.testing.assert_allclose(s.points[floor] @ up, (v @ up).min(), atol=1e-12)
    assert np.isnan(s.barycentric[floor]).all() and (s.face[floor] == -1).all()
    assert (s.sensors @ up > (v @ up).min() + 0.5).all()     # sensors well above the floor


def test_noisy_triangulation_faces_the_sensors_and_skips_depth_jumps(body):
    v, f = body
    s = virtual_scan(v, f, ScannerConfig(n_points=20000, faces="noisy", normals="estimated", floor=False))
    assert s.faces.shape[1] == 3 and len(s.faces) > len(s.points)
    assert (s.sensor[s.faces] == s.sensor[s.faces[:, :1]]).all()     # one view per triangle
    p = s.points[s.faces]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    assert ((n * (s.sensors[s.sensor[s.faces[:, 0]]] - p[:, 0])).sum(1) > 0).all()
    truth = s.surface[s.faces]
    span = np.linalg.norm(truth - truth[:, [1, 2, 0]], axis=2).max(1)
    assert np.median(span) < 0.02 and span.max() < 0.1
    np.testing.assert_allclose(np.linalg.norm(s.normals, axis=1), 1.0, atol=1e-9)
    assert ((s.normals * (s.sensors[s.sensor] - s.points)).sum(1) > 0).all()


def test_noisy_triangulation_does_not_bridge_a_depth_step():
    # two upright squares, the second 0.3 m behind the first and shifted sideways: the sensor facing them
    # sees an edge of the front one over the back one
    sq = np.array([[0, -0.2, -0.5], [0, 0.2, -0.5], [0, 0.2, 0.5], [0, -0.2, 0.5]], float)
    v = np.vstack([sq, sq + [-0.3, 0.25, 0.0]])
    f = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    s = virtual_scan(v, f, ScannerConfig(n_points=5000, n_views=1, azimuth=90.0, faces="noisy", floor=False,
                                                       noise_mm=1.0))
    plane = s.face[s.faces] // 2                            # 0 front square, 1 back square
    assert (plane == 0).any() and (plane == 1).any()
    assert (plane == plane[:, :1]).all()


def test_bad_config_is_a_one_line_error():
    v, f = sphere(1)
    with pytest.raises(BodydataError, match="up_axis"):
        virtual_scan(v, f, ScannerConfig(up_axis="up"))
    with pytest.raises(BodydataError, match="needs faces"):
        virtual_scan(v, np.zeros((0, 3), np.int64), ScannerConfig())
