"""Point-cloud targets (faces of shape (0, 3)): nearest-point distances and estimated normals in TargetMesh."""
from __future__ import annotations

import numpy as np
import trimesh

from bodydata.registration.icp import TargetMesh
from bodydata.registration.metrics import point_to_mesh, surface_distances


def test_faceless_distances_are_nearest_point_distances():
    rng = np.random.default_rng(0)
    cloud = rng.uniform(-1, 1, (500, 3))
    query = rng.uniform(-1, 1, (40, 3))
    naive = np.array([np.linalg.norm(cloud - q, axis=1).min() for q in query])
    none = np.zeros((0, 3), np.int64)
    np.testing.assert_allclose(point_to_mesh(query, cloud, none), naive, atol=1e-12)
    s = trimesh.creation.icosphere(subdivisions=2)
    v, f = np.asarray(s.vertices), np.asarray(s.faces)
    sd = surface_distances(query, none, cloud, none)
    np.testing.assert_allclose(sd.a_to_b, naive, atol=1e-12)
    # a mesh side still measures to its surface: the sphere's own vertices are on it
    assert np.allclose(surface_distances(v, f, v, none).a_to_b, 0) and np.allclose(point_to_mesh(v, v, f), 0)


def test_target_of_a_point_cloud_gets_outward_normals():
    x = np.random.default_rng(1).normal(size=(4000, 3))
    p = 0.5 * x / np.linalg.norm(x, axis=1, keepdims=True)
    t = TargetMesh(p, np.zeros((0, 3), np.int64))
    assert t.faces.shape == (0, 3)
    assert ((t.normals * p / 0.5).sum(1) > 0.98).all()
    given = TargetMesh(p, np.zeros((0, 3), np.int64), normals=-p / 0.5)
    np.testing.assert_allclose(given.normals, -p / 0.5)
    s = trimesh.creation.icosphere(subdivisions=2)
    mesh = TargetMesh(np.asarray(s.vertices), np.asarray(s.faces))
    assert ((mesh.normals * np.asarray(s.vertices)).sum(1) > 0.99).all()
