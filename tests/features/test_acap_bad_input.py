"""Bad input gets a clear one-line error instead of a wrong feature."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.errors import MeshError
from bodydata.features.acap import AcapExtractor
from bodydata.mesh import write_mesh


def test_different_connectivity_is_rejected(sphere, tmp_path):
    q, faces = sphere
    ext = AcapExtractor(q, faces)
    flipped = faces.copy()
    flipped[0] = flipped[0, ::-1]                                  # same counts, one face re-wound
    with pytest.raises(MeshError, match="different faces than the template"):
        ext.check_mesh(q, flipped, "x.ply")
    with pytest.raises(MeshError, match="connectivity"):
        ext.check_mesh(q, faces[:-1], "x.ply")
    with pytest.raises(MeshError, match="vertices, the template has"):
        ext.check_mesh(q[:-1], faces, "x.ply")
    # through files: a remeshed shape with the same vertex count is caught by its faces
    import trimesh

    other = np.asarray(trimesh.creation.icosphere(subdivisions=2).faces)[:, [0, 2, 1]]
    write_mesh(tmp_path / "bad.ply", q, other)
    from bodydata.features.files import extract_files

    with pytest.raises(MeshError) as err:
        extract_files(ext, [tmp_path / "bad.ply"], progress=False)
    assert "bad.ply" in str(err.value) and "\n" not in str(err.value)


def test_non_finite_and_wrong_shapes(sphere):
    q, faces = sphere
    ext = AcapExtractor(q, faces)
    bad = q.copy()
    bad[3, 1] = np.nan
    with pytest.raises(MeshError, match="non-finite"):
        ext.check_mesh(bad, faces)
    with pytest.raises(MeshError, match="expected"):
        ext(np.zeros((2, len(q) + 1, 3)))


def test_degenerate_template_is_rejected():
    q = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], float)   # flat, no normal row -> rank 2
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    with pytest.raises(MeshError, match="does not span 3-D"):
        AcapExtractor(q, faces, normal_scale=0.0)
