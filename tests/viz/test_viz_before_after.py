"""Before/after figure: per-face error values against a loop, the error panel's colours and colour bar in the PNG."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.viz.before_after import ERROR_CMAP, VertexError, face_values, render_before_after


def _box():
    """A closed unit cube (8 vertices, 12 outward triangles), z-up."""
    v = np.array([[x, y, z] for z in (0.0, 1.0) for y in (0.0, 1.0) for x in (0.0, 1.0)])
    f = np.array([
        [0, 2, 1], [1, 2, 3], [4, 5, 6], [5, 7, 6], [0, 1, 4], [1, 5, 4],
        [2, 6, 3], [3, 6, 7], [0, 4, 2], [2, 4, 6], [1, 3, 5], [3, 7, 5],
    ])
    return v, f


def test_face_values_are_corner_means():
    rng = np.random.default_rng(0)
    vals = rng.uniform(0, 10, 8)
    _, f = _box()
    got = face_values(vals, f)
    for k, tri in enumerate(f):
        assert np.isclose(got[k], (vals[tri[0]] + vals[tri[1]] + vals[tri[2]]) / 3.0)


def _pixels(path):
    import matplotlib.image as mpimg

    return mpimg.imread(path)[..., :3]


def test_error_panel_is_coloured_and_has_a_colour_bar(tmp_path):
    import matplotlib

    v, f = _box()
    plain = render_before_after(tmp_path / "plain.png", f, [v, v + 0.1], ["a", "b"])
    # Every vertex at the top of the scale: the error panel takes the colour map's last colour.
    err = VertexError(np.full(8, 5.0), "error to true neutral", panel=1, vmax_mm=5.0)
    coloured = render_before_after(tmp_path / "err.png", f, [v, v + 0.1], ["a", "b"], error=err)
    a, b = _pixels(plain), _pixels(coloured)
    assert b.shape[1] > a.shape[1]  # the colour bar adds a column
    top = np.asarray(matplotlib.colormaps[ERROR_CMAP](1.0)[:3])
    # Shaded faces are the top colour scaled by 0.55..1: pixels whose colour is parallel to it.
    cos = (b @ top) / np.maximum(np.linalg.norm(b, axis=-1) * np.linalg.norm(top), 1e-12)
    near = (cos > 0.999) & (b.sum(-1) > 0.3)
    cos_plain = (a @ top) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(top), 1e-12)
    assert near[:, : a.shape[1]].sum() > 2000 and ((cos_plain > 0.999) & (a.sum(-1) > 0.3)).sum() < 50


def test_error_panel_must_exist(tmp_path):
    v, f = _box()
    with pytest.raises(ValueError, match="error panel 3"):
        render_before_after(tmp_path / "x.png", f, [v], ["a"], error=VertexError(np.zeros(8), "e", panel=3))
