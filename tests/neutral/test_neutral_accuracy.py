"""Neutral construction against anny ground truth (5 identities x 3 poses at 1,229 vertices, true neutral known)."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.neutral.neutralize import NeutralConfig, NeutralizeError, Neutralizer
from bodydata.mesh.alignment import mean_euclidean_distance


@pytest.fixture(scope="module")
def neutralizer(anny_lite_template):
    return Neutralizer(anny_lite_template, anny_lite_template.vertices, NeutralConfig(method="arap"))


def test_constructed_neutral_is_close_to_the_truth(neutralizer, anny_lite_bodies):
    d = anny_lite_bodies
    med, before, length_err = [], [], []
    for i in range(len(d["poses"])):
        res = neutralizer.subject(d["poses"][i])
        truth = d["neutral"][i]
        # The best-scored pose (smallest joint-angle distance to the target) leads; the next one is averaged in.
        angles = [neutralizer.joint_angle_distance(p) for p in d["poses"][i]]
        assert res.pose_index == int(np.argmin(angles))
        assert res.pose_indices == tuple(int(j) for j in np.argsort(angles)[:2])
        assert np.allclose(res.scores, angles)
        assert res.converged and res.residual_after_mm < res.residual_before_mm
        med.append(mean_euclidean_distance(res.vertices, truth) * 1000)
        before.append(mean_euclidean_distance(d["poses"][i, res.pose_index], truth) * 1000)
        length_err.append(np.abs(neutralizer.segments.lengths(res.vertices) - neutralizer.segments.lengths(truth)) * 1000)
    med = np.array(med)
    # Measured 2026-11: MED mean 8.45 / max 9.8 mm (joint-angle choice, 2 poses averaged); the paper's
    # rule (smallest rigid residual, one pose) gives 11.7 / 21.1 mm on the same bodies and fails both bounds.
    assert med.mean() < 9.5 and med.max() < 12.0, med
    assert np.all(med < 0.35 * np.array(before))
    assert np.mean(length_err) < 6.0


def test_paper_rule_picks_the_smallest_rigid_residual(anny_lite_template, anny_lite_bodies):
    d = anny_lite_bodies
    nz = Neutralizer(anny_lite_template, anny_lite_template.vertices, NeutralConfig(selection="rigid", average=1, method="arap"))
    med = []
    for i in range(len(d["poses"])):
        res = nz.subject(d["poses"][i])
        residuals = [nz.residuals(p[None])[0] for p in d["poses"][i]]
        assert res.pose_index == int(np.argmin(residuals)) and res.pose_indices == (res.pose_index,)
        assert np.allclose(res.scores, np.array(residuals) * 1000.0)
        med.append(mean_euclidean_distance(res.vertices, d["neutral"][i]) * 1000)
    # Measured 11.7 / 21.1 mm (one sitting/crouching choice); the segment constraints still work
    # (swing-only gives 23 mm mean, no joint placement 22 mm, the posed bodies 137 mm).
    assert np.mean(med) < 16.0 and np.max(med) < 30.0, med


def test_joint_angles_are_relative_to_the_parent(neutralizer):
    sm = neutralizer.segments
    rng = np.random.default_rng(3)
    from bodydata.mesh.rotations import axis_angle_matrix

    # One rotation for the whole body: only the root has a joint angle.
    r = axis_angle_matrix(np.array([0.0, 0.6, 0.8]), np.array(0.7))
    ang = sm.joint_angles(np.broadcast_to(r, (len(sm.segments), 3, 3)))
    root = sm.parents.index(-1)
    assert np.isclose(ang[root], 0.7) and np.allclose(np.delete(ang, root), 0.0, atol=1e-7)
    # Random rotations against a per-element loop.
    axes = rng.normal(size=(len(sm.segments), 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    rots = axis_angle_matrix(axes, rng.uniform(0, np.pi, len(sm.segments)))
    ang = sm.joint_angles(rots)
    for k, p in enumerate(sm.parents):
        rel = rots[k] if p < 0 else rots[p].T @ rots[k]
        want = np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1))
        assert np.isclose(ang[k], want, atol=1e-7)


def test_orientation_modes_rank_as_measured(anny_lite_template, anny_lite_bodies):
    d = anny_lite_bodies
    out = {}
    for mode in ("part", "swing"):
        nz = Neutralizer(anny_lite_template, anny_lite_template.vertices, NeutralConfig(orientation=mode, method="arap"))
        out[mode] = np.mean([mean_euclidean_distance(nz.deform(d["poses"][i, 0])[1].vertices, d["neutral"][i])
                             for i in range(len(d["poses"]))])
    assert out["part"] < out["swing"]


def test_unusable_input_is_an_error_not_a_crash(neutralizer, anny_lite_bodies):
    poses = anny_lite_bodies["poses"][0].copy()
    with pytest.raises(NeutralizeError, match="no usable pose"):
        neutralizer.subject(np.full_like(poses, np.nan))
    poses[0] = np.nan  # one broken pose is skipped
    assert neutralizer.subject(poses).pose_index != 0
    with pytest.raises(NeutralizeError, match="selection"):
        Neutralizer(neutralizer.template, neutralizer.target, NeutralConfig(selection="smallest"))
    with pytest.raises(NeutralizeError, match="average"):
        Neutralizer(neutralizer.template, neutralizer.target, NeutralConfig(average=0))
    with pytest.raises(NeutralizeError, match="shape"):
        neutralizer.subject(poses[:, :10])
    strict = Neutralizer(neutralizer.template, neutralizer.target, NeutralConfig(iterations=1, method="arap"))
    with pytest.raises(NeutralizeError, match="did not converge"):
        strict.subject(anny_lite_bodies["poses"][0])
