"""Kabsch/Umeyama alignment against known transforms and a per-point loop."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bodydata.mesh.alignment import (
    AlignmentError,
    align,
    kabsch_rotation,
    mean_euclidean_distance,
    rigid_residual,
    vertex_distances,
)


def test_recovers_rigid_and_similarity_transforms_batched():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(4, 50, 3))
    rot = Rotation.random(4, random_state=1).as_matrix()
    t = rng.normal(size=(4, 3))
    s = np.array([1.0, 0.5, 2.0, 1.3])
    tgt = s[:, None, None] * np.einsum("bij,bnj->bni", rot, src) + t[:, None, :]
    sim = align(src, tgt, scale=True)
    assert np.allclose(sim.rotation, rot, atol=1e-10)
    assert np.allclose(sim.scale, s) and np.allclose(sim.translation, t)
    assert np.allclose(sim.rms, 0.0, atol=1e-10)
    rigid = align(src[:1], tgt[:1])
    assert np.allclose(rigid.rotation[0], rot[0], atol=1e-10) and rigid.scale[0] == 1.0


def test_reflection_safe_and_rms_matches_loop():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(30, 3))
    tgt = src * np.array([-1.0, 1.0, 1.0]) + rng.normal(scale=0.01, size=(30, 3))  # a mirror image
    a = align(src, tgt)
    assert np.isclose(np.linalg.det(a.rotation), 1.0)
    aligned = a.apply(src)
    loop = np.sqrt(sum(float(np.sum((aligned[k] - tgt[k]) ** 2)) for k in range(30)) / 30)
    assert np.isclose(a.rms, loop)
    # Any other proper rotation about the optimal centroid does worse.
    for r in Rotation.random(20, random_state=3).as_matrix():
        c = src.mean(0)
        other = (src - c) @ (r @ a.rotation).T + tgt.mean(0)
        assert np.sqrt(np.mean(np.sum((other - tgt) ** 2, 1))) >= a.rms - 1e-12
    assert np.isclose(rigid_residual(src, tgt), a.rms)


def test_kabsch_rotation_is_proper_and_med_is_rigid_invariant():
    rng = np.random.default_rng(4)
    r = kabsch_rotation(rng.normal(size=(100, 3, 3)))
    assert np.allclose(np.linalg.det(r), 1.0) and np.allclose(r @ np.swapaxes(r, 1, 2), np.eye(3), atol=1e-12)
    a = rng.normal(size=(40, 3))
    b = a @ Rotation.random(random_state=5).as_matrix().T + 3.0
    assert mean_euclidean_distance(a, b) < 1e-12 and mean_euclidean_distance(a, b, rigid=False) > 1.0


def test_bad_input_raises():
    with pytest.raises(AlignmentError):
        align(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(AlignmentError):
        align(np.zeros((5, 3)), np.zeros((6, 3)))
    with pytest.raises(AlignmentError):
        align(np.full((5, 3), np.nan), np.zeros((5, 3)))


def test_vertex_distances_after_alignment_match_a_loop():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(30, 3))
    b = a @ Rotation.random(random_state=7).as_matrix().T + [0.5, -1.0, 2.0]
    bump = np.zeros_like(b)
    bump[3] = [0.0, 0.0, 0.2]  # one vertex off: the rigid fit spreads a little of it over the others
    d = vertex_distances(a, b + bump)
    fit = align(a, b + bump)
    for i in range(len(a)):
        moved = fit.scale * fit.rotation @ a[i] + fit.translation
        assert np.isclose(d[i], np.linalg.norm(moved - (b + bump)[i]))
    assert d.argmax() == 3 and 0.15 < d[3] < 0.2
    assert np.isclose(mean_euclidean_distance(a, b + bump), d.mean())
    assert np.allclose(vertex_distances(a, a + 1.0, rigid=False), np.sqrt(3.0))
