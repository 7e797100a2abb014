"""The landmark similarity start shared by the Registrar and the learned-prior registrar: a known similarity back."""
import numpy as np
from scipy.spatial.transform import Rotation

from bodydata.registration.register import landmark_start


def test_known_similarity_is_recovered_from_the_shared_landmarks_only():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(40, 3))
    rot = Rotation.from_rotvec([0.3, -1.1, 0.5]).as_matrix()
    target = 1000.0 * ref @ rot.T + [5.0, -2.0, 7.0]
    perm = rng.permutation(40)  # the target's own vertex order
    moved = np.empty_like(target)
    moved[perm] = target
    tpl = {f"p{k}": k for k in range(8)}
    lm = {f"p{k}": int(perm[k]) for k in (0, 2, 3, 5, 7)} | {"elsewhere": 0}
    start = landmark_start(tpl, ref, moved, lm, ignore=("p7",))
    assert start.tl.tolist() == [0, 2, 3, 5] and start.sl.tolist() == perm[[0, 2, 3, 5]].tolist()
    assert np.isclose(start.s0, 1000.0) and np.allclose(start.r0, rot)
    assert np.allclose(start.t0, [5.0, -2.0, 7.0])


def test_fewer_than_four_shared_landmarks_is_the_reason():
    ref = np.eye(3).repeat(3, 0)
    got = landmark_start({"a": 0, "b": 1, "c": 2, "d": 3}, ref, ref, {"a": 0, "b": 1, "c": 2, "d": 3}, ignore=("d",))
    assert got == "no landmarks: 3 shared with the template (need >= 4)"
