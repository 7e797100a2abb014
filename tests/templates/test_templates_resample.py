"""Re-expressing anny-template meshes in anny-lite's connectivity: the rest body, an affine motion, a posed body."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest


@pytest.fixture(scope="module")
def resampler():
    from bodydata.templates.resample import TemplateResampler
    from bodydata.templates.template import load_template

    return TemplateResampler(load_template("anny"), load_template("anny-lite")), load_template("anny-lite")


def test_rest_body_and_affine_motion(resampler):
    rs, lite = resampler
    from bodydata.templates.template import load_template

    fine = load_template("anny").vertices
    # the coarse template sits on the fine one's surface: resampling the fine rest body gives it back
    assert np.abs(rs(fine) - lite.vertices).max() <= rs.distance_mm.max() / 1000.0 + 1e-12
    assert np.median(np.linalg.norm(rs(fine) - lite.vertices, axis=1)) < 1e-5
    a = np.array([[0.9, 0.1, 0.0], [-0.1, 1.1, 0.2], [0.0, 0.05, 1.0]])
    moved = fine @ a.T + [0.1, -2.0, 0.5]
    np.testing.assert_allclose(rs(moved), rs(fine) @ a.T + [0.1, -2.0, 0.5], atol=1e-12)
    both = rs(np.stack([fine, moved]))
    np.testing.assert_allclose(both[1], rs(moved), atol=0)


def test_posed_anny_body_matches_anny_lite_posed_the_same_way(resampler):
    """anny posed in both topologies by the same parameters: the resampled fine body is the coarse one."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("anny")
    from bodydata.bodyfit.body import AnnyBody
    from bodydata.generator.poses import key_pose_vector

    rs, _ = resampler
    phen = np.array([[0.4, 0.8, 0.6, 0.3, 0.5, 0.5]])
    angles = key_pose_vector("arms_raised")[None]
    with torch.no_grad():
        fine = AnnyBody("notoes")
        coarse = AnnyBody("notoes_collapse10pc")
        vf = fine(fine.params(1, phen, angles)).posed[0].numpy().astype(np.float64)
        vc = coarse(coarse.params(1, phen, angles)).posed[0].numpy().astype(np.float64)
    err = np.linalg.norm(rs(vf) - vc, axis=1) * 1000.0
    assert np.median(err) < 0.5 and err.mean() < 1.5  # skinning is interpolated along the fine triangles


def test_refuses_other_bodies_and_wrong_meshes(resampler):
    from bodydata.templates.resample import ResampleError, TemplateResampler
    from bodydata.templates.template import load_template

    rs, lite = resampler
    with pytest.raises(ResampleError, match="expected"):
        rs(lite.vertices)
    shifted = dataclasses.replace(lite, vertices=lite.vertices + [0.0, 0.0, 0.5])
    with pytest.raises(ResampleError, match="not on"):
        TemplateResampler(load_template("anny"), shifted)
