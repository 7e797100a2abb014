"""Segments: swing/twist maths, recovery of a known rigid rotation, forward kinematics, template checks."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bodydata.neutral.segments import (
    SEGMENTS,
    Segment,
    SegmentError,
    SegmentModel,
)
from bodydata.mesh.rotations import axis_angle_matrix


def test_recovers_a_global_rotation(anny_lite_template):
    tpl = anny_lite_template
    model = SegmentModel.from_template(tpl)
    assert (model.vertex_segment >= 0).all() and len(model.segments) == 15
    r = Rotation.from_rotvec([0.2, 0.5, -0.3]).as_matrix()
    subject = tpl.vertices @ r.T
    rots = model.rotations(subject, tpl.vertices)
    assert np.allclose(rots, r.T, atol=1e-9)
    # Turning every segment by r^T about its joint gives back the target (up to one translation).
    reposed = model.handle_targets(subject, rots)
    shift = (tpl.vertices - reposed).mean(0)
    assert np.abs(reposed + shift - tpl.vertices).max() < 1e-9
    assert np.allclose(model.lengths(subject), model.lengths(tpl.vertices))


def test_identity_rotations_keep_the_subject(anny_lite_template):
    model = SegmentModel.from_template(anny_lite_template)
    v = anny_lite_template.vertices + 0.01
    out = model.handle_targets(v, np.broadcast_to(np.eye(3), (len(model.segments), 3, 3)))
    assert np.allclose(out, v)
    assert model.order[0] == model.names.index("pelvis")
    assert all(model.order.index(model.parents[k]) < model.order.index(k) for k in model.order[1:])


def test_twist_part_recovers_a_forearm_twist(anny_lite_template):
    tpl = anny_lite_template
    model = SegmentModel.from_template(tpl)
    k = model.names.index("forearm_L")
    d = model.directions(tpl.vertices)[k]
    twist = axis_angle_matrix(d, np.array(0.6))
    subject = tpl.vertices.copy()
    sel = model.vertex_segment == k
    c = tpl.vertices[model.start_ids[k]]
    subject[sel] = (tpl.vertices[sel] - c) @ twist.T + c  # twist about the landmark axis
    rots = model.rotations(subject, tpl.vertices, mode="landmarks")
    assert np.allclose(rots[k], twist.T, atol=1e-9)
    none = model.rotations(subject, tpl.vertices, mode="swing")
    assert np.allclose(none[k], np.eye(3), atol=1e-9)


def test_template_problems_raise(anny_lite_template):
    tpl = anny_lite_template
    bad = dataclasses.replace(tpl, landmarks={k: v for k, v in tpl.landmarks.items() if k != "elbow_L"})
    with pytest.raises(SegmentError, match="elbow_L"):
        SegmentModel.from_template(bad)
    with pytest.raises(SegmentError, match="two segments"):
        SegmentModel.from_template(tpl, SEGMENTS + (Segment("extra", "knee_L", "ankle_L", ("calf_L",), "pelvis"),))
    with pytest.raises(SegmentError, match="roots"):
        SegmentModel.from_template(tpl, tuple(dataclasses.replace(s, parent=None) for s in SEGMENTS))


def test_robust_part_rotation_ignores_vertices_that_move_with_a_neighbour(anny_lite_template):
    tpl = anny_lite_template
    model = SegmentModel.from_template(tpl)
    k = model.names.index("pelvis")
    sel = np.flatnonzero(model.vertex_segment == k)
    r = Rotation.from_rotvec([0.0, 0.0, 0.3]).as_matrix()
    subject = tpl.vertices.copy()
    subject[sel] = tpl.vertices[sel] @ r.T
    # A fifth of the segment (its lowest vertices) swings with another bone by 60 degrees.
    low = sel[np.argsort(tpl.vertices[sel, 2])[: len(sel) // 5]]
    c = tpl.vertices[low].mean(0)
    subject[low] = (subject[low] - c) @ Rotation.from_rotvec([1.0, 0.0, 0.0]).as_matrix().T + c
    plain = model.rotations(subject, tpl.vertices, mode="part")[k]
    robust, resid = model.robust_part_rotations(subject, tpl.vertices, threshold=0.02)
    err = lambda m: Rotation.from_matrix(m @ r).magnitude()  # noqa: E731  (rotation back is r^T)
    assert err(robust[k]) < 0.5 * err(plain) and err(robust[k]) < np.radians(1.0)
    assert np.median(resid[low]) > 0.02 > np.median(resid[np.setdiff1d(sel, low)])
