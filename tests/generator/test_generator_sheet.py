"""Contact sheet renderer: projection geometry (front-facing culling, depth order, view axes) and a PNG on disk."""
from __future__ import annotations

import numpy as np

from bodydata.viz.contact_sheet import project_mesh, render_contact_sheet


def _box(center=(0.0, 0.0, 0.0), size=1.0):
    c = np.asarray(center, float)
    v = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float) * size - size / 2 + c
    # outward, counter-clockwise faces of the unit cube (vertex index = 4x + 2y + z)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    f = np.array([t for a, b, c_, d in quads for t in ((a, b, c_), (a, c_, d))], np.int64)
    return v, f


def test_cube_faces_are_outward():
    v, f = _box()
    tri = v[f]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert np.all(np.einsum("ij,ij->i", n, tri.mean(1)) > 0)


def test_projection_keeps_only_the_faces_towards_the_camera():
    v, f = _box()
    polys, shade = project_mesh(v, f, view=(0, 1, 0), up=(0, 0, 1))
    # looking along +y sees the y = -0.5 face only: 2 triangles, x to the right, z up
    assert polys.shape == (2, 3, 2)
    assert np.allclose(np.sort(np.unique(polys[..., 0])), [-0.5, 0.5])
    assert np.allclose(np.sort(np.unique(polys[..., 1])), [-0.5, 0.5])
    assert np.all((shade >= 0) & (shade <= 1))


def test_far_box_is_drawn_first():
    v1, f1 = _box(center=(0, 0, 0), size=0.5)
    v2, f2 = _box(center=(0.2, 3, 0), size=0.5)  # behind the first box when looking along +y
    v = np.vstack([v1, v2])
    f = np.vstack([f1, f2 + len(v1)])
    polys, _ = project_mesh(v, f, view=(0, 1, 0))
    assert polys.shape[0] == 4
    centres_x = polys[..., 0].mean(axis=1)
    assert np.allclose(centres_x[:2].mean(), 0.2, atol=0.1)  # far box first (painter's algorithm)
    assert np.allclose(centres_x[2:].mean(), 0.0, atol=0.1)


def test_contact_sheet_png(tmp_path):
    v, f = _box()
    out = render_contact_sheet(tmp_path / "s.png", [(v, f), (v * 2, f), (v, f)], titles=["a", "b", "c"], columns=2)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg

    img = mpimg.imread(out)
    assert img.shape[0] > 100 and img.shape[1] > 100
    # something other than white was drawn
    assert (img[..., :3] < 0.9).any()
    assert not list(tmp_path.glob(".s.png.tmp-*"))
