"""Forcing the source pose of a neutral (``Neutralizer.subject(pose=k)``, ``neutralize_subject_files(force_pose=)``)."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.mesh import read_mesh, write_mesh
from bodydata.neutral.neutralize import (
    NeutralConfig,
    NeutralizeError,
    Neutralizer,
    neutralize_subject_files,
)


@pytest.fixture(scope="module")
def neutralizer(anny_lite_template):
    return Neutralizer(anny_lite_template, anny_lite_template.vertices, NeutralConfig(method="arap"))


def _worst(nz, poses):
    """Index of the pose the default selection ranks last (never chosen by default with 3 poses, average=2)."""
    return int(np.argmax([nz.joint_angle_distance(p) for p in poses]))


def test_forced_pose_deforms_exactly_that_mesh(neutralizer, anny_lite_bodies):
    poses = anny_lite_bodies["poses"][0]
    k = _worst(neutralizer, poses)
    default = neutralizer.subject(poses)
    assert k not in default.pose_indices and not default.forced
    res = neutralizer.subject(poses, pose=k)
    assert res.forced and res.pose_index == k and res.pose_indices == (k,)
    # Exactly pose k, deformed on its own: the same vertices as deforming it directly.
    single = neutralizer.deform(poses[k])[1]
    assert np.array_equal(res.vertices, single.vertices)
    assert np.isclose(res.residual_before_mm, neutralizer.residuals(poses[k:k + 1])[0] * 1000.0)
    # Only the forced pose is scored.
    assert np.isclose(res.scores[k], neutralizer.joint_angle_distance(poses[k]))
    assert np.isnan(np.delete(res.scores, k)).all()
    # The mesh, not the position, decides: moving pose k to the front and forcing index 0 gives the same body.
    order = [k] + [j for j in range(len(poses)) if j != k]
    moved = neutralizer.subject(poses[order], pose=0)
    assert np.array_equal(moved.vertices, res.vertices)
    # And a different forced pose gives a different body.
    other = neutralizer.subject(poses, pose=default.pose_index)
    assert np.abs(other.vertices - res.vertices).max() > 1e-3


def test_default_is_unchanged_by_the_option(neutralizer, anny_lite_bodies):
    poses = anny_lite_bodies["poses"][1]
    a, b = neutralizer.subject(poses), neutralizer.subject(poses, pose=None)
    assert np.array_equal(a.vertices, b.vertices) and a.pose_indices == b.pose_indices and len(a.pose_indices) == 2
    assert np.isfinite(a.scores).all() and not b.forced


def test_bad_forced_pose_raises(neutralizer, anny_lite_bodies):
    poses = anny_lite_bodies["poses"][2].copy()
    for bad in (3, -1, 1.5):
        with pytest.raises(NeutralizeError, match="forced pose"):
            neutralizer.subject(poses, pose=bad)
    poses[1, 5, 0] = np.nan
    with pytest.raises(NeutralizeError, match="non-finite"):
        neutralizer.subject(poses, pose=1)
    assert neutralizer.subject(poses, pose=0).pose_index == 0


def test_forced_pose_is_recorded_in_the_row(tmp_path, neutralizer, anny_lite_bodies, anny_lite_template):
    poses = anny_lite_bodies["poses"][3]
    files = []
    for j, p in enumerate(poses):
        path = tmp_path / "meshes" / f"pose{j}.ply"
        write_mesh(path, p, anny_lite_template.faces)
        files.append((f"p{j}", path))
    k = _worst(neutralizer, poses)
    row = neutralize_subject_files(neutralizer, "s3", files, tmp_path / "out", png=False, force_pose=f"p{k}")
    assert row["status"] == "done" and row["selection"] == "forced"
    assert row["chosen_pose"] == f"p{k}" and row["averaged_poses"] == f"p{k}" and row["chosen_path"] == str(files[k][1])
    written = read_mesh(tmp_path / "out" / row["output"]).vertices
    assert np.allclose(written, neutralizer.subject(poses, pose=k).vertices, atol=1e-6)
    auto = neutralize_subject_files(neutralizer, "s3", files, tmp_path / "auto", png=False)
    assert auto["selection"] == "joint_angles" and f"p{k}" not in auto["averaged_poses"].split(";")
    with pytest.raises(NeutralizeError, match="not a readable pose"):
        neutralize_subject_files(neutralizer, "s3", files, tmp_path / "x", png=False, force_pose="p9")
