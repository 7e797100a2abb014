"""Part-localised ACAP prior: partition of unity, locality, exact reproduction with all components, save/load."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.registration.prior import (
    PriorError,
    SparsePrior,
    build_prior,
    identity_feature,
    part_weights,
)


@pytest.fixture(scope="module")
def random_features(anny_lite_template):
    rng = np.random.default_rng(3)
    n = anny_lite_template.n_vertices
    return identity_feature(n)[None] + 0.1 * rng.standard_normal((12, n, 9))


def test_part_weights_partition_of_unity(anny_lite_template):
    t = anny_lite_template
    w = part_weights(t.vertices, t.faces, t.part_labels, falloff=0.05)
    assert w.shape == (t.n_vertices, 16)
    assert np.allclose(w.sum(1), 1.0)
    assert np.all(w >= 0)
    # zero falloff: exactly the one-hot part labels
    w0 = part_weights(t.vertices, t.faces, t.part_labels, falloff=0.0)
    assert np.array_equal(w0, np.eye(16)[t.part_labels])
    # a vertex farther than the falloff from every other part keeps weight 1 for its own part
    assert np.all(w[np.arange(t.n_vertices), t.part_labels] > 0)


def test_full_basis_reproduces_training_and_is_local(anny_lite_template, random_features):
    t = anny_lite_template
    n_total = 16 * len(random_features)
    pr = build_prior(random_features, t.vertices, t.faces, t.part_labels, n_total, "anny-lite", falloff=0.05)
    w = pr.express(random_features)
    assert np.allclose(pr.features(w), random_features, atol=1e-8)
    # every column is zero outside its part's support band
    c = pr.basis.tocsc()
    for col in range(0, pr.K, 7):
        rows = c.indices[c.indptr[col]:c.indptr[col + 1]]
        verts = np.unique(rows // 9)
        assert np.all(pr.weights[verts, pr.component_part[col]] > 0)
    with pytest.raises(PriorError):
        build_prior(random_features, t.vertices, t.faces, t.part_labels, n_total + 1, "anny-lite")


def test_express_recovers_coefficients_and_roundtrip(anny_lite_template, random_features, tmp_path):
    t = anny_lite_template
    pr = build_prior(random_features, t.vertices, t.faces, t.part_labels, 40, "anny-lite")
    assert pr.K == 40 and len(set(pr.component_part.tolist())) == 16   # every part gets a component
    w_true = np.random.default_rng(1).standard_normal((2, 40))
    assert np.allclose(pr.express(pr.features(w_true)), w_true, atol=1e-8)
    path = pr.save(tmp_path / "p.npz")
    back = SparsePrior.load(path, template_name="anny-lite", n_vertices=t.n_vertices)
    assert back.K == 40 and back.template_name == "anny-lite"
    assert np.allclose(back.features(w_true), pr.features(w_true))
    with pytest.raises(PriorError, match="built for template"):
        SparsePrior.load(path, template_name="anny")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(PriorError):
        SparsePrior.load(tmp_path / "bad.npz")


def test_weighting_is_recorded_and_checked(anny_lite_template, random_features, tmp_path):
    t = anny_lite_template
    pr = build_prior(random_features, t.vertices, t.faces, t.part_labels, 20, "anny-lite", weighting="cotangent")
    back = SparsePrior.load(pr.save(tmp_path / "c.npz"))
    assert back.weighting == "cotangent"
    # a prior file written before the field existed reads as the ACAP authors' weights
    z = dict(np.load(tmp_path / "c.npz"))
    del z["weighting"]
    np.savez(tmp_path / "old.npz", **z)
    assert SparsePrior.load(tmp_path / "old.npz").weighting == "acap"
    with pytest.raises(PriorError, match="unknown edge weighting"):
        build_prior(random_features, t.vertices, t.faces, t.part_labels, 20, "anny-lite", weighting="mean")
