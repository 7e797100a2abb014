"""Fixtures of the ACAP feature tests: posed anny-lite bodies, a small sphere, the real SCAPE and oracle sets."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.generator.poses import FAR_POSES as ANNY_POSES
from bodydata.generator.poses import pose_axis_angles as pose_anny


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
