"""The real meshes under shared/data: counts, and what their topology actually is (observed, not assumed)."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.errors import MeshError
from bodydata.mesh import (
    check_manifold,
    connected_components,
    edges,
    is_edge_manifold,
    is_vertex_manifold,
    is_watertight,
    read_mesh,
    surface_area,
)


def test_faust_registration(shared_data):
    p = shared_data / "faust" / "registrations" / "tr_reg_000.ply"
    m = read_mesh(p, expected_vertices=6890)
    assert m.vertices.shape == (6890, 3) and m.faces.shape == (13776, 3)
    n = len(m.vertices)
    # The SMPL-topology registration is a closed genus-0 2-manifold in one piece.
    check_manifold(m.faces, n, path=p, require_watertight=True)
    assert n - len(edges(m.faces)) + len(m.faces) == 2
    assert connected_components(m.faces, n).max() == 0
    # Metres: a standing adult has ~1.5-2.2 m^2 of skin.
    assert 1.5 < surface_area(m.vertices, m.faces) < 2.2


def test_faust_remeshed(shared_data):
    p = shared_data / "faust_r" / "off" / "tr_reg_000.off"
    m = read_mesh(p)
    assert m.vertices.shape == (4999, 3) and m.faces.shape == (9994, 3)
    check_manifold(m.faces, len(m.vertices), path=p, require_watertight=True)


def test_scape_original_connectivity(shared_data):
    root = shared_data / "scape" / "original_12500"
    m = read_mesh(root / "mesh000.off", expected_vertices=12500)
    assert m.faces.shape == (25000, 3)
    # mesh000 lists face (398, 419, 473) twice, so two of its edges are used by 4 faces.
    assert not is_edge_manifold(m.faces) and not is_watertight(m.faces)
    with pytest.raises(MeshError, match=r"mesh000\.off: edge \(398, 419\) is shared by 4 faces \(non-manifold; 2 such edges\)"):
        check_manifold(m.faces, 12500, path=root / "mesh000.off")
    s = np.sort(m.faces, axis=1)
    _, counts = np.unique(s, axis=0, return_counts=True)
    assert counts.max() == 2 and (counts == 2).sum() == 1

    # mesh002 has the cleaned 24,998-face list: closed and edge-manifold, but vertex 419 is a bow-tie.
    m2 = read_mesh(root / "mesh002.off", expected_vertices=12500)
    assert m2.faces.shape == (24998, 3)
    assert is_watertight(m2.faces) and is_edge_manifold(m2.faces)
    assert not is_vertex_manifold(m2.faces, 12500)
    with pytest.raises(MeshError, match=r"vertex 419 is a non-manifold fan"):
        check_manifold(m2.faces, 12500, path=root / "mesh002.off")
