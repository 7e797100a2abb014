"""The body fit's closest pairs whose normals agree: the fast search (1-nearest first, 6 nearest only where needed;
one pose tree for every rigidly placed hypothesis) against a per-point loop over the plain definition."""
import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from bodydata.bodyfit.fit import _K, _nearest_agreeing


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _naive(points, point_normals, queries, query_normals):
    """Per query: the first of the _K nearest (sorted by a full distance sort) whose normal agrees, else the nearest."""
    idx, ok = [], []
    for q, qn in zip(queries, query_normals):
        near = np.argsort(np.linalg.norm(points - q, axis=1), kind="stable")[:_K]
        agree = [j for j in near if point_normals[j] @ qn > 0.0]
        idx.append(agree[0] if agree else near[0])
        ok.append(bool(agree))
    return np.array(idx), np.array(ok)


def test_nearest_agreeing_is_the_first_agreeing_of_the_k_nearest():
    rng = np.random.default_rng(0)
    pts, nrm = rng.normal(size=(400, 3)), _unit(rng.normal(size=(400, 3)))
    q, qn = rng.normal(size=(300, 3)), _unit(rng.normal(size=(300, 3)))
    idx, ok = _nearest_agreeing(cKDTree(pts), q, qn, nrm)
    ref_idx, ref_ok = _naive(pts, nrm, q, qn)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(ok, ref_ok)
    # random normals: both kinds occur (some nearest disagree, some queries have no agreeing neighbour)
    assert 0 < ok.sum() < len(ok) and (idx != cKDTree(pts).query(q)[1]).any()


def test_nearest_agreeing_with_one_normal_set_per_owner():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(200, 3))
    normals = _unit(rng.normal(size=(3, 200, 3)))  # three hypotheses, one tree
    q, qn = rng.normal(size=(150, 3)), _unit(rng.normal(size=(150, 3)))
    owner = rng.integers(0, 3, 150)
    idx, ok = _nearest_agreeing(cKDTree(pts), q, qn, normals, owner)
    for h in range(3):
        sel = owner == h
        ref_idx, ref_ok = _naive(pts, normals[h], q[sel], qn[sel])
        np.testing.assert_array_equal(idx[sel], ref_idx)
        np.testing.assert_array_equal(ok[sel], ref_ok)


@pytest.fixture(scope="module")
def fitter():
    from bodydata.bodyfit.fit import BodyFitSettings, BodyFitter

    lite = "notoes_collapse10pc"
    return BodyFitter(BodyFitSettings(topology=lite, coarse_topology=lite))


def test_rigid_pairs_equal_a_tree_of_each_placed_body(fitter):
    """_nearest_rigid looks the target up in each key pose's own frame; the answer must be the placed body's pairs."""
    from bodydata.bodyfit.fit import _Target
    from bodydata.bodyfit.orient import orientation_hypotheses
    from bodydata.features.polar import rotation_exp_torch

    rng = np.random.default_rng(2)
    body = fitter._pose_bodies[3].numpy()
    target = _Target(body @ np.diag([1.0, -1.0, -1.0]) + rng.normal(0, 0.01, body.shape), fitter.coarse.faces,
                     n_points=800, seed=0)
    rots = orientation_hypotheses(target.placement.axes)[[0, 5, 9, 0]]
    pose_ids = np.array([3, 7, 3, 12])
    fitter._metric = True
    state = fitter._rigid_state(rots, pose_ids, 0.05)
    state["omega"] = torch.as_tensor(rng.normal(0, 0.2, (4, 3)))
    state["t"] = state["t"] + torch.as_tensor(rng.normal(0, 0.05, (4, 3)))
    n_model, n_target = 300, 500
    rot = rotation_exp_torch(state["omega"]) @ state["r0"]
    normals = fitter._pose_normals[pose_ids] @ rot.transpose(1, 2)  # a rigid body's normals turn with it
    placed = fitter._vertices(None, state, fitter._pose_bodies[pose_ids]).detach().numpy()
    keep = fitter._shuffle(placed.shape[1])[:n_model]
    idx, ok = fitter._nearest_rigid(state, pose_ids, target, n_model, n_target, normals[:, keep])
    for k in range(4):
        ref_idx, ref_ok = _naive(placed[k, keep], normals[k, keep].numpy(), target.points[:n_target],
                                 target.normals[:n_target])
        assert (idx[k] == ref_idx).mean() > 0.999 and (ok[k] == ref_ok).mean() > 0.999  # rounding ties only
