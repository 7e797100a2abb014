"""Point-to-mesh distances, landmark error and MED on known geometry."""
from __future__ import annotations

import numpy as np

from bodydata.mesh.closest import closest_points
from bodydata.registration.metrics import landmark_error, med, surface_distances


def _grid(nx=6):
    x, y = np.meshgrid(np.linspace(0, 1, nx), np.linspace(0, 1, nx))
    v = np.stack([x.ravel(), y.ravel(), np.zeros(nx * nx)], 1)
    f = []
    for i in range(nx - 1):
        for j in range(nx - 1):
            k = i * nx + j
            f += [[k, k + 1, k + nx + 1], [k, k + nx + 1, k + nx]]
    return v, np.array(f)


def test_point_to_mesh_plane_and_identity():
    v, f = _grid()
    pts = np.array([[0.3, 0.4, 0.2], [0.5, 0.5, -0.1], [1.5, 0.5, 0.0], [0.77, 0.13, 0.05]])
    d, face, bary, cp = closest_points(pts, v, f)
    assert np.allclose(d, [0.2, 0.1, 0.5, 0.05])
    assert np.allclose(cp[0], [0.3, 0.4, 0.0]) and np.allclose(cp[2], [1.0, 0.5, 0.0])
    sd = surface_distances(v, f, v, f)
    assert np.allclose(sd.a_to_b, 0) and np.allclose(sd.b_to_a, 0)
    shifted = v + [0, 0, 0.003]
    s = surface_distances(shifted, f, v, f).summary()
    assert np.isclose(s["p2m_mean_mm"], 3.0) and np.isclose(s["m2p_p95_mm"], 3.0)
    assert np.isclose(med(shifted, v), 0.003)
    assert np.isclose(landmark_error(shifted, {"a": 0, "b": 5}, v, {"a": 0, "c": 1}), 0.003)
    assert np.isnan(landmark_error(v, {"a": 0}, v, {"b": 0}))
