"""Neutral construction against anny ground truth (5 identities x 3 poses at 1,229 vertices, true neutral known)."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.neutral.neutralize import NeutralConfig, NeutralizeError, Neutralizer
from bodydata.neutral.procrustes import mean_euclidean_distance


@pytest.fixture(scope="module")
def neutralizer(anny_lite_template):
    return Neutralizer(anny_lite_template, anny_lite_template.vertices)


def test_constructed_neutral_is_close_to_the_truth(neutralizer, anny_lite_bodies):
    d = anny_lite_bodies
    med, before, length_err = [], [], []
    for i in range(len(d["poses"])):
        res = neutralizer.subject(d["poses"][i])
        truth = d["neutral"][i]
        # The chosen pose is the one with the smallest rigid residual to the target.
        residuals = [neutralizer.residuals(p[None])[0] for p in d["poses"][i]]
        assert res.pose_index == int(np.argmin(residuals))
        assert res.converged and res.residual_after_mm < res.residual_before_mm
        med.append(mean_euclidean_distance(res.vertices, truth) * 1000)
        before.append(mean_euclidean_distance(d["poses"][i, res.pose_index], truth) * 1000)
        length_err.append(np.abs(neutralizer.segments.lengths(res.vertices) - neutralizer.segments.lengths(truth)) * 1000)
    med = np.array(med)
    # Measured 2026-11: MED mean 11.7 / max 22.7 mm over all 15 poses (mean target, anny joints);
    # the bounds leave room for solver changes but fail if the segment constraints stop working
    # (swing-only gives 23 mm, no joint placement 22 mm, the posed bodies 137 mm).
    assert med.mean() < 16.0 and med.max() < 30.0, med
    assert np.all(med < 0.35 * np.array(before))
    assert np.mean(length_err) < 6.0


def test_orientation_modes_rank_as_measured(anny_lite_template, anny_lite_bodies):
    d = anny_lite_bodies
    out = {}
    for mode in ("part", "swing"):
        nz = Neutralizer(anny_lite_template, anny_lite_template.vertices, NeutralConfig(orientation=mode))
        out[mode] = np.mean([mean_euclidean_distance(nz.deform(d["poses"][i, 0])[1].vertices, d["neutral"][i])
                             for i in range(len(d["poses"]))])
    assert out["part"] < out["swing"]


def test_unusable_input_is_an_error_not_a_crash(neutralizer, anny_lite_bodies):
    poses = anny_lite_bodies["poses"][0].copy()
    with pytest.raises(NeutralizeError, match="no usable pose"):
        neutralizer.subject(np.full_like(poses, np.nan))
    poses[0] = np.nan  # one broken pose is skipped
    assert neutralizer.subject(poses).pose_index != 0
    with pytest.raises(NeutralizeError, match="shape"):
        neutralizer.subject(poses[:, :10])
    strict = Neutralizer(neutralizer.template, neutralizer.target, NeutralConfig(iterations=1))
    with pytest.raises(NeutralizeError, match="did not converge"):
        strict.subject(anny_lite_bodies["poses"][0])
