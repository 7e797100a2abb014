"""The shoulder-girdle option of SegmentModel.handle_targets against a known deformation: an arm swung about
the jugular notch comes back to the target's shoulder position, translated, not turned."""
from __future__ import annotations

import numpy as np

from bodydata.mesh.rotations import axis_angle_matrix
from bodydata.neutral.segments import SegmentModel, anny_joint_positions


def test_girdle_puts_the_shoulder_joint_back(anny_lite_template):
    t = anny_lite_template
    model = SegmentModel.from_template(t, joints=anny_joint_positions(t))
    names = list(t.part_names)
    arm_parts = [names.index(p) for p in ("upper_arm_L", "forearm_L", "hand_L")]
    arm = np.isin(np.asarray(t.part_labels), arm_parts)
    jn = t.vertices[t.landmarks["jugular_notch"]]
    rot = axis_angle_matrix(np.array([0.0, 1.0, 0.0]), np.array(np.deg2rad(20.0)))  # about the front axis
    subject = t.vertices.copy()
    subject[arm] = (subject[arm] - jn) @ rot.T + jn                     # the whole arm raised at the clavicle
    ident = np.repeat(np.eye(3)[None], len(model.segments), axis=0)
    k = model.names.index("upper_arm_L")
    c_subj = model.joint_centres(subject)[k]
    c_tpl = model.joint_centres(t.vertices)[k]
    assert np.linalg.norm(c_subj - c_tpl) > 0.02                        # the deformation moved the joint

    plain = model.handle_targets(subject, ident)
    assert np.allclose(plain, subject)                                  # no turn, no girdle: nothing moves

    out = model.handle_targets(subject, ident, t.vertices, girdle=("upper_arm_L",))
    seg = model.vertex_segment
    moved = np.isin(seg, [model.names.index(n) for n in ("upper_arm_L", "forearm_L", "hand_L")])
    # the arm chain is translated so that its shoulder joint sits where the target's is (same clavicle length)
    assert np.allclose(out[moved], subject[moved] + (c_tpl - c_subj), atol=1e-9)
    assert np.allclose(out[~moved], subject[~moved])
    # a per-vertex loop of the same rule: pivot + |c - pivot| * unit(target direction)
    d = c_subj - jn
    want = c_tpl - jn
    expect = jn + np.linalg.norm(d) * want / np.linalg.norm(want)
    for i in np.flatnonzero(seg == k)[:50]:
        assert np.allclose(out[i] - subject[i], expect - c_subj, atol=1e-9)
