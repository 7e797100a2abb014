"""The body fit's extra start poses: named DOFs inside the joint limits, no clash with the library, and a one-sided
pose's name says which side it moves (checked on anny's posed body) with its mirror image under the other name."""
import numpy as np
import pytest


def test_scan_poses_are_inside_the_limits_and_new():
    from bodydata.bodyfit.scan_poses import SCAN_POSES, scan_pose_vectors
    from bodydata.generator.poses import POSE_NAMES, dof_keys, dof_limits

    lo, hi, _ = dof_limits()
    vectors = scan_pose_vectors()
    assert set(vectors) == set(SCAN_POSES) and not set(vectors) & set(POSE_NAMES)
    for name, a in vectors.items():
        assert a.shape == (len(dof_keys()),)
        bad = [k for k, x, low, high in zip(dof_keys(), a, lo, hi) if not low <= x <= high]
        assert not bad, (name, bad)


@pytest.fixture(scope="module")
def lite_landmarks():
    """Landmark name -> (P, 3) positions of anny's average body in every scan pose (name order of SCAN_POSES)."""
    import torch

    from bodydata.bodyfit.body import AnnyBody
    from bodydata.bodyfit.scan_poses import scan_pose_vectors
    from bodydata.templates.landmarks import load_landmarks

    body = AnnyBody("notoes_collapse10pc")
    angles = np.stack(list(scan_pose_vectors().values()))
    with torch.no_grad():
        v = body(body.params(len(angles), angles=angles)).posed.cpu().numpy()
    return {n: v[:, i] for n, i in load_landmarks("anny_notoes_collapse10pc").items()}


# anny's frame: the subject's left is +x, the front -y, up +z
@pytest.mark.parametrize("stem,landmark,axis,sign", [
    ("standing_relaxed+knee_up", "knee", 2, 1.0),   # that knee is higher
    ("arms_raised+knee_up", "knee", 2, 1.0),
    ("hands_on_head+knee_out", "knee", 2, 1.0),
    ("arm_swing_forward", "wrist", 1, -1.0),       # that hand is in front
])
def test_one_sided_poses_move_the_named_side_and_mirror(lite_landmarks, stem, landmark, axis, sign):
    from bodydata.bodyfit.scan_poses import SCAN_POSES

    names = list(SCAN_POSES)
    r, l_ = names.index(f"{stem}_R"), names.index(f"{stem}_L")
    lm = lite_landmarks
    # the named side leads by more than 10 cm
    assert sign * (lm[f"{landmark}_R"][r, axis] - lm[f"{landmark}_L"][r, axis]) > 0.10
    assert sign * (lm[f"{landmark}_L"][l_, axis] - lm[f"{landmark}_R"][l_, axis]) > 0.10
    # the _L pose is the mirror image of the _R pose (x -> -x, sides swapped), to the rest body's own asymmetry
    flip = np.array([-1.0, 1.0, 1.0])
    for side, other in (("_L", "_R"), ("_R", "_L")):
        for part in ("knee", "wrist", "elbow", "ankle"):
            assert np.allclose(lm[part + side][r] * flip, lm[part + other][l_], atol=5e-3), (stem, part + side)
