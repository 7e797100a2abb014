"""Closed loop of the registered fit: anny's own mesh under a random similarity gives back its phenotype and pose."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("anny")


def test_fit_registered_recovers_known_body():
    from scipy.spatial.transform import Rotation

    from bodydata.bodyfit.body import AnnyBody
    from bodydata.bodyfit.fit_registered import RegisteredFitError, RegisteredFitter
    from bodydata.generator.poses import dof_keys, key_pose_vector, perturb

    body = AnnyBody("notoes_collapse10pc")
    rng = np.random.default_rng(5)
    angles = perturb(key_pose_vector("standing_relaxed"), rng, 0.5)[None]
    angles[:, [i for i, k in enumerate(dof_keys()) if k.startswith("pelvis")]] = 0.0  # the global turn's job
    phen = np.array([[0.3, 0.6, 0.4, 0.6, 0.5, 0.5]])
    with torch.no_grad():
        posed = body(body.params(1, phen, angles)).posed[0].numpy()
    rot = Rotation.random(random_state=7).as_matrix()
    mesh = 1.1 * posed @ rot.T + np.array([0.3, -1.0, 2.0])
    fit = RegisteredFitter(body).fit(mesh)[0]
    assert fit.med_mm < 3.0, fit.med_mm
    assert abs(fit.scale - 1.1) < 0.03
    np.testing.assert_allclose(fit.rotation, rot, atol=0.05)
    err = np.abs(fit.angles - angles[0])
    assert np.median(err) < 2.0 and err.max() < 15.0, (np.median(err), err.max())
    # the fitted vertices are the body the parameters give
    with torch.no_grad():
        again = body(fit.params(body)).vertices[0].numpy()
    np.testing.assert_allclose(again, fit.vertices, atol=1e-9)
    with pytest.raises(RegisteredFitError, match="expected"):
        RegisteredFitter(body).fit(np.zeros((10, 3)))
