"""Fixtures of the ACAP feature tests: posed anny-lite bodies, a small sphere, the real SCAPE and oracle sets."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.features.polar import rotation_exp

# A few far-apart poses (bone label -> axis-angle, radians) for anny's 'notoes_collapse10pc' topology.
ANNY_POSES = [
    {"root": [0.0, 0.0, 0.0]},
    {"upperarm01.L": [0, 0, 0.9], "lowerarm01.L": [0, 1.0, 0], "upperleg01.R": [0.7, 0, 0],
     "lowerleg01.R": [-0.9, 0, 0], "spine02": [0, 0.3, 0.2], "neck01": [0.2, 0, 0.4]},
    {"upperarm01.R": [0, 0, -0.9], "lowerarm01.R": [0, -1.0, 0], "upperleg01.L": [-0.5, 0.2, 0],
     "lowerleg01.L": [-1.0, 0, 0], "spine03": [0.2, -0.3, 0], "root": [0, 0, 2.8]},
    {"upperarm01.L": [0.6, 0.6, 0.2], "upperarm01.R": [-0.6, 0.6, 0.2], "lowerarm01.L": [0, 1.2, 0],
     "lowerarm01.R": [0, -1.2, 0], "root": [0, 0, -2.9], "head": [0, 0.5, 0]},
]


def pose_anny(model, poses) -> np.ndarray:
    """(B, n, 3) float64 vertices of ``model`` in each pose (dict bone label -> axis-angle)."""
    import torch

    out = []
    for pose in poses:
        d = {}
        for bone, aa in pose.items():
            m = np.eye(4)
            m[:3, :3] = rotation_exp(np.asarray(aa, float))
            d[bone] = torch.as_tensor(m[None])
        with torch.no_grad():
            out.append(model(pose_parameters=d)["vertices"][0].double().numpy())
    return np.stack(out)


@pytest.fixture(scope="session")
def anny_lite_bodies():
    """(vertices (4, 1229, 3) float64 -- rest pose first, faces (m, 3) int64) of posed anny-lite bodies."""
    anny = pytest.importorskip("anny")
    model = anny.Anny(topology="notoes_collapse10pc")
    return pose_anny(model, ANNY_POSES), np.asarray(model.faces, dtype=np.int64)


@pytest.fixture(scope="session")
def sphere():
    """(vertices (162, 3), faces (320, 3)) of an icosphere, radius 1."""
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=2)
    return np.asarray(m.vertices, np.float64), np.asarray(m.faces, np.int64)


@pytest.fixture(scope="session")
def scape_meshes(shared_data):
    """All 71 SCAPE poses in one 2,161-vertex connectivity: (vertices (71, 2161, 3), faces)."""
    from bodydata.mesh import read_mesh

    folder = shared_data / "scape" / "simplified_2161"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    ms = [read_mesh(folder / f"{k}.obj") for k in range(1, 72)]
    return np.stack([m.vertices for m in ms]), ms[0].faces
