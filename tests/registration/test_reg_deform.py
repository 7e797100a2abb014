"""Torch prior map and E_prior against plain per-vertex / per-edge loops."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bodydata.features.deformation import edge_weights
from bodydata.features.polar import rotation_exp, vec6_to_sym
from bodydata.registration.deform import PriorDeformer
from bodydata.registration.prior import build_prior, identity_feature


@pytest.fixture(scope="module")
def setup(anny_lite_template):
    t = anny_lite_template
    rng = np.random.default_rng(5)
    feats = identity_feature(t.n_vertices)[None] + 0.05 * rng.standard_normal((6, t.n_vertices, 9))
    pr = build_prior(feats, t.vertices, t.faces, t.part_labels, 30, "anny-lite")
    return t, pr, PriorDeformer(pr, t.vertices, t.faces, device="cpu")


def test_features_and_transforms_match_loop(setup):
    t, pr, d = setup
    w = np.random.default_rng(2).standard_normal((1, pr.K))
    f = d.features(torch.as_tensor(w)).numpy()[0]
    assert np.allclose(f, pr.features(w)[0])
    tr = d.transforms(torch.as_tensor(w)).numpy()[0]
    for i in range(0, t.n_vertices, 97):
        assert np.allclose(tr[i], rotation_exp(f[i, :3]) @ vec6_to_sym(f[i, 3:]))


def test_prior_energy_and_rhs_match_loop(setup):
    t, pr, d = setup
    rng = np.random.default_rng(4)
    w = torch.as_tensor(rng.standard_normal((1, pr.K)))
    tr = d.transforms(w)
    p = torch.as_tensor(t.vertices + 0.01 * rng.standard_normal(t.vertices.shape))[None]
    e, c = edge_weights(t.vertices, t.faces)
    q, pn, tn = t.vertices, p[0].numpy(), tr[0].numpy()
    ref = 0.0
    for (i, j), cij in zip(e, c):
        for a, b in ((i, j), (j, i)):
            ref += cij * np.sum(((pn[a] - pn[b]) - tn[a] @ (q[a] - q[b])) ** 2)
    assert np.isclose(float(d.prior_energy(p, tr)[0]), ref, rtol=1e-10)
    assert torch.allclose(d.rhs(tr), d.reconstructor.rhs(tr))


def test_reconstruction_minimises_prior_energy(setup):
    t, pr, d = setup
    w = torch.as_tensor(np.random.default_rng(6).standard_normal((1, pr.K)))
    tr = d.transforms(w)
    p = d.reconstruct(w).clone().requires_grad_(True)
    d.prior_energy(p, tr).sum().backward()
    g = p.grad[0].numpy()
    g[d.reconstructor.anchor] = 0.0           # the anchor is fixed, not free
    scale = float(d.prior_energy(d.reconstruct(torch.zeros_like(w)) * 1.01, d.transforms(torch.zeros_like(w)))[0])
    assert np.abs(g).max() < 1e-8 * max(scale, 1.0) + 1e-10
