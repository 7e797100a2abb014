"""The part renderer: axis parsing, occlusion of labelled points, and the left/right convention of the PNG."""
import numpy as np
import pytest

from bodydata.viz.parts_render import _camera, _visible, axis_vector, render_mesh_views


def test_axis_vector():
    assert np.array_equal(axis_vector("z"), [0, 0, 1])
    assert np.array_equal(axis_vector("-y"), [0, -1, 0])
    assert np.array_equal(axis_vector("+x"), [1, 0, 0])
    assert np.allclose(axis_vector([0, 0, 2]), [0, 0, 1])
    with pytest.raises(ValueError):
        axis_vector("w")


def test_front_camera_puts_the_subjects_left_on_the_right():
    # anny: up z, front -y, left = up x front = +x; the front camera must map +x to image right
    right, up, forward = _camera(axis_vector("z"), axis_vector("-y"))
    assert np.allclose(right, [1, 0, 0]) and np.allclose(up, [0, 0, 1]) and np.allclose(forward, [0, 1, 0])
    # SCAPE: up x, front -y, left = -z
    right, up, forward = _camera(axis_vector("x"), axis_vector("-y"))
    assert np.allclose(right, np.cross(axis_vector("x"), axis_vector("-y")))


def test_points_behind_a_wall_are_hidden():
    v = np.array([[-1, 0, -1], [1, 0, -1], [1, 0, 1], [-1, 0, 1]], dtype=float)  # wall in the plane y = 0
    f = np.array([[0, 1, 2], [0, 2, 3]])
    right, up, forward = _camera(axis_vector("z"), axis_vector("-y"))  # camera at -y looking +y
    pts = np.array([[0, -0.5, 0], [0, 0.5, 0], [3, 0.5, 0], [0.2, 0.0, 0.3]])
    assert _visible(pts, v, f, right, up, forward).tolist() == [True, False, True, True]


def test_png_colours_the_left_limb_on_the_image_right(tmp_path):
    # two front-facing squares: red at +x (the subject's left for up z / front -y), blue at -x
    sq = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]], dtype=float) * 0.3
    v = np.concatenate([sq + [0.2, 0, 0], sq + [-0.5, 0, 0]])
    f = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    colors = np.array([[1.0, 0, 0]] * 4 + [[0, 0, 1.0]] * 4)
    png = render_mesh_views(v, f, colors, tmp_path / "lr.png", up_axis="z", front_axis="-y", dpi=60)
    import matplotlib.image as mpimg

    img = mpimg.imread(png)[..., :3]
    front = img[:, : img.shape[1] // 2]  # the left panel is the front view
    red = (front[..., 0] > 0.2) & (front[..., 1] < 0.1) & (front[..., 2] < 0.1)
    blue = (front[..., 2] > 0.2) & (front[..., 0] < 0.1) & (front[..., 1] < 0.1)
    assert red.sum() > 50 and blue.sum() > 50
    assert np.nonzero(red)[1].mean() > np.nonzero(blue)[1].mean()
