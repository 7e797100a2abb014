"""The body fit's extra start poses: named DOFs inside the joint limits, mirrored pairs, no clash with the library."""
import numpy as np


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


def test_one_sided_scan_poses_come_with_their_mirror():
    from bodydata.bodyfit.scan_poses import SCAN_POSES
    from bodydata.generator.poses import mirror_pose, pose_vector

    sided = [n for n in SCAN_POSES if n.endswith("_R") or "_R_" in n]
    assert len(sided) == 4
    for name in sided:
        twin = name.replace("_R", "_L")
        assert np.array_equal(pose_vector(mirror_pose(SCAN_POSES[name])), pose_vector(SCAN_POSES[twin])), name
