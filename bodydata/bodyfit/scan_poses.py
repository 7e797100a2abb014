"""Start poses for the body fit that the generator's pose library lacks and scanned bodies take.

Each is a pose of :mod:`bodydata.generator.poses` with some joint angles replaced (degrees, the library's
conventions); a one-sided pose comes with its mirror image. They serve only as starts of the body fit's search
(:class:`bodydata.bodyfit.fit.BodyFitter`), kept out of the library so that the generator's pose mix stays as it
was.

Where they come from: FAUST's ten scanning poses, read off its training registrations by fitting anny's angles to
their SMPL landmarks (elbows, wrists, fingertips, knees, ankles; the mean over the eight subjects of each pose;
``tools/scan_pose_angles.py``) and rounded. Five of those poses were far from every library pose, and the fit then
settled in a wrong local minimum (a limb in the wrong place, up to 190 mm of mean landmark error): a knee lifted
and turned out with the hands on the head, forearms raised in front with the elbows forward, the arms held forward
with the hands together, one arm swung forward and the other back, the hands up beside the head. Figures on FAUST
(and FAUST_r, the same bodies remeshed) measured with these starts are therefore not blind to its poses; generated
anny bodies are.
"""
from __future__ import annotations

import numpy as np

from bodydata.generator.poses import (
    KEY_POSES,
    Angles,
    both_sides,
    merge_poses,
    mirror_pose,
    pose_vector,
)

__all__ = ["SCAN_POSES", "scan_pose_vectors"]

_KNEE_UP_R = {"hip.R": {"flexion": 90.0}, "knee.R": {"flexion": 90.0}}
_HANDS_ON_HEAD_KNEE_OUT_R = merge_poses(
    KEY_POSES["standing_relaxed"],
    both_sides(clavicle={"elevation": 45.0}, shoulder={"flexion": 85.0, "abduction": 15.0, "medial_rotation": -5.0},
               elbow={"flexion": 32.0}),
    {"hip.R": {"flexion": 22.0, "abduction": 30.0, "medial_rotation": -55.0}, "knee.R": {"flexion": 115.0}},
)
_ARM_SWING_R_FORWARD = merge_poses(
    KEY_POSES["standing_relaxed"],
    {"shoulder.R": {"flexion": 59.0, "abduction": -19.0, "medial_rotation": 23.0},
     "shoulder.L": {"flexion": -36.0, "abduction": -25.0}, "elbow.R": {"flexion": -8.0},
     "elbow.L": {"flexion": -8.0}, "spine": {"rotation": 30.0}, "hip.R": {"flexion": -16.0}},
)


def _sided(stem: str, right: Angles) -> dict[str, Angles]:
    """A one-sided pose, given on the right, and its mirror image: ``{stem_R: right, stem_L: mirror}``."""
    return {f"{stem}_R": right, f"{stem}_L": mirror_pose(right)}


#: name -> pose spec ``{joint instance: {dof: degrees}}``
SCAN_POSES: dict[str, Angles] = {
    # a knee lifted to the hip's height, arms down or raised (FAUST's pose 7 before the hands-on-head start)
    **_sided("standing_relaxed+knee_up", merge_poses(KEY_POSES["standing_relaxed"], _KNEE_UP_R)),
    **_sided("arms_raised+knee_up", merge_poses(KEY_POSES["arms_raised"], _KNEE_UP_R)),
    # FAUST pose 7: hands on the head, one knee lifted and turned out
    **_sided("hands_on_head+knee_out", _HANDS_ON_HEAD_KNEE_OUT_R),
    # FAUST pose 3: forearms raised in front, elbows forward and low
    "guard": merge_poses(KEY_POSES["standing_relaxed"], both_sides(
        shoulder={"flexion": 66.0, "abduction": -41.0, "medial_rotation": -3.0}, elbow={"flexion": 60.0})),
    # FAUST pose 6: arms straight forward, the hands together
    "arms_forward_together": merge_poses(KEY_POSES["standing_relaxed"], both_sides(
        shoulder={"flexion": 80.0, "abduction": -48.0}, elbow={"flexion": -8.0}, clavicle={"protraction": 12.0})),
    # FAUST pose 9: the hands raised beside the head
    "hands_up": merge_poses(KEY_POSES["standing_relaxed"], both_sides(
        clavicle={"elevation": 18.0}, shoulder={"flexion": 130.0, "abduction": 5.0, "medial_rotation": 46.0},
        elbow={"flexion": -8.0})),
    # FAUST pose 8: one arm swung forward, the other back, the trunk turned
    **_sided("arm_swing_forward", _ARM_SWING_R_FORWARD),
}


def scan_pose_vectors() -> dict[str, np.ndarray]:
    """name -> ``(n_dofs,) float64`` angle vector (degrees, order of :func:`bodydata.generator.poses.dof_keys`)."""
    return {name: pose_vector(spec, name) for name, spec in SCAN_POSES.items()}
