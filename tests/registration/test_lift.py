"""CageLift: fine vertices follow a coarse cage's poses (rigid/scale exactness, a per-vertex loop, bad input)."""
import numpy as np
import pytest
import trimesh

from bodydata.errors import BodydataError
from bodydata.registration.lift import CageLift, lift_poses


def _cage_and_fine():
    coarse = trimesh.creation.icosphere(subdivisions=2)
    fine = trimesh.creation.icosphere(subdivisions=3)
    rng = np.random.default_rng(0)
    # the fine surface sits off the coarse one (offsets along and across the normal)
    fv = fine.vertices * (1.02 + 0.01 * rng.standard_normal((len(fine.vertices), 1)))
    return np.asarray(coarse.vertices), np.asarray(coarse.faces, np.int64), fv


def _rotation(seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((3, 3)))
    return q * np.sign(np.linalg.det(q))


@pytest.mark.parametrize("smooth", [0, 1])
def test_rest_pose_gives_the_fine_mesh_back(smooth):
    cv, cf, fv = _cage_and_fine()
    lift = CageLift.fit(cv, cf, fv, smooth=smooth)
    assert np.allclose(lift(cv), fv, atol=1e-12)


@pytest.mark.parametrize("smooth", [0, 1])
def test_similarity_of_the_cage_moves_the_fine_mesh_by_the_same_similarity(smooth):
    cv, cf, fv = _cage_and_fine()
    lift = CageLift.fit(cv, cf, fv, smooth=smooth)
    poses, expect = [], []
    for seed, s in ((1, 1.0), (2, 0.7), (3, 1.6)):
        r, t = _rotation(seed), np.array([0.3, -1.0, 2.0]) * seed
        poses.append(s * cv @ r.T + t)
        expect.append(s * fv @ r.T + t)
    got = lift_poses(cv, cf, fv, np.stack(poses), smooth=smooth)
    assert got.shape == (3, len(fv), 3)
    assert np.allclose(got, np.stack(expect), atol=1e-10)
    assert np.allclose(lift(poses[1]), expect[1], atol=1e-10)     # one pose, (m, 3) -> (n, 3)


def test_single_triangle_map_matches_a_per_vertex_loop():
    cv, cf, fv = _cage_and_fine()
    lift = CageLift.fit(cv, cf, fv, smooth=0)
    rng = np.random.default_rng(4)
    posed = cv + 0.05 * rng.standard_normal(cv.shape)          # a non-rigid pose of the cage
    got = lift(posed)
    for i in range(0, len(fv), 7):
        f = cf[lift.face[i, 0]]
        # the closest triangle: no other cage triangle is nearer to the fine vertex
        frame = []
        for verts in (cv, posed):
            x0, x1, x2 = verts[f]
            e1, e2 = x1 - x0, x2 - x0
            n = np.cross(e1, e2)
            n = n / np.sqrt(np.linalg.norm(n))
            frame.append((x0, np.column_stack([e1, e2, n])))
        abc = np.linalg.solve(frame[0][1], fv[i] - frame[0][0])
        assert np.allclose(got[i], frame[1][0] + frame[1][1] @ abc, atol=1e-12)


def test_closest_triangle_is_the_closest():
    cv, cf, fv = _cage_and_fine()
    lift = CageLift.fit(cv, cf, fv, smooth=0)
    tris = cv[cf]
    for i in range(0, len(fv), 11):   # brute force over every cage triangle
        pts = trimesh.triangles.closest_point(tris, np.repeat(fv[i][None], len(cf), axis=0))
        best = np.linalg.norm(pts - fv[i], axis=1).min()
        assert np.isclose(np.linalg.norm(pts[lift.face[i, 0]] - fv[i]), best, atol=1e-12)


def test_smooth_weights_are_a_partition_of_unity():
    cv, cf, fv = _cage_and_fine()
    lift = CageLift.fit(cv, cf, fv, smooth=1)
    assert lift.face.shape[1] > 1
    assert np.allclose(lift.weights.sum(1), 1.0)
    assert (lift.weights >= 0).all()


def test_bad_input_is_one_clear_error():
    cv, cf, fv = _cage_and_fine()
    lift = CageLift.fit(cv, cf, fv)
    with pytest.raises(BodydataError, match="coarse poses must have 162 vertices"):
        lift(cv[:100])
    bad = fv.copy()
    bad[3, 1] = np.nan
    with pytest.raises(BodydataError, match="non-finite"):
        CageLift.fit(cv, cf, bad)
