"""Closed loop of the registered fit: anny's own mesh under a random similarity gives back its phenotype and pose."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("anny")


@pytest.mark.parametrize("every", [1, 3])
def test_fit_registered_recovers_known_body(every):
    """With an exact Jacobian at every step and with Broyden updates between exact ones (the default)."""
    from scipy.spatial.transform import Rotation

    from bodydata.bodyfit.body import AnnyBody
    from bodydata.bodyfit.fit_registered import RegisteredFitError, RegisteredFitSettings, RegisteredFitter
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
    fit = RegisteredFitter(body, RegisteredFitSettings(jacobian_every=every)).fit(mesh)[0]
    # the exact body is reachable and Levenberg-Marquardt gets there (gradient descent stopped 2-5 mm short)
    assert fit.med_mm < 0.1, fit.med_mm
    assert abs(fit.scale - 1.1) < 1e-3
    np.testing.assert_allclose(fit.phenotype, phen[0], atol=0.01)
    np.testing.assert_allclose(fit.rotation, rot, atol=0.02)
    err = np.abs(fit.angles - angles[0])
    assert np.median(err) < 0.2 and err.max() < 2.0, (np.median(err), err.max())
    # the fitted vertices are the body the parameters give
    with torch.no_grad():
        again = body(fit.params(body)).vertices[0].numpy()
    np.testing.assert_allclose(again, fit.vertices, atol=1e-9)
    with pytest.raises(RegisteredFitError, match="expected"):
        RegisteredFitter(body).fit(np.zeros((10, 3)))


@pytest.mark.parametrize("share", [True, False])
def test_forward_difference_jacobian_matches_autograd(share):
    """The solver's batched forward-difference Jacobian (pose, similarity and phenotype columns) against
    autograd's Jacobian of the same residuals, column by column."""
    from bodydata.bodyfit.fit_registered import RegisteredFitSettings

    rng = np.random.default_rng(3)
    prob, x = _two_mesh_problem(rng, [0.3, 0.7, 0.4, 0.6, 0.45, 0.55], 15.0, [0.35, 0.75, 0.45, 0.55, 0.4, 0.6],
                                lambda angles, rig: angles, RegisteredFitSettings(), share)
    if not share:  # each mesh its own identity, so a mix-up of the rows' identities shows
        x[6:12] = torch.tensor([0.8, 0.9, 0.1, 0.2, 0.7, 0.3], dtype=torch.float64)
    with torch.no_grad():
        r, _ = prob.residuals(x)
        j_per, j_ph = prob._jacobians(x, r)
    full = torch.autograd.functional.jacobian(lambda v: prob.residuals(v)[0], x)  # (B, 3m, N)
    g = 1 if share else 2
    for i in range(2):
        per_cols = full[i][:, 6 * g + prob.k * i: 6 * g + prob.k * (i + 1)]
        ph_cols = full[i][:, :6] if share else full[i][:, 6 * i: 6 * i + 6]
        scale = per_cols.abs().max()
        np.testing.assert_allclose(j_per[i].numpy(), per_cols.numpy(), atol=2e-4 * float(scale))
        np.testing.assert_allclose(j_ph[i].numpy(), ph_cols.numpy(), atol=2e-4 * float(ph_cols.abs().max()))


def test_batch_of_independent_meshes_equals_each_alone():
    """Without a shared phenotype, a mesh's fit does not depend on the other meshes of the batch."""
    from bodydata.bodyfit.body import AnnyBody
    from bodydata.bodyfit.fit_registered import RegisteredFitSettings, RegisteredFitter

    body = AnnyBody("notoes_collapse10pc")
    rng = np.random.default_rng(11)
    phen = np.array([[0.2, 0.8, 0.7, 0.3, 0.6, 0.4], [0.9, 0.78, 0.2, 0.6, 0.3, 0.7]])
    with torch.no_grad():
        posed = body(body.params(2, phen, rng.normal(0.0, 12.0, (2, body.n_dofs)))).posed.numpy()
    fitter = RegisteredFitter(body, RegisteredFitSettings(fit_scale=False, iterations=8))
    batch = fitter.fit(posed)
    for i in range(2):
        alone = fitter.fit(posed[i])[0]
        np.testing.assert_allclose(batch[i].vertices, alone.vertices, atol=1e-12)
        np.testing.assert_allclose(batch[i].phenotype, alone.phenotype, atol=1e-12)


def test_phenotype_at_a_bound_is_reached_and_held():
    """A true muscle of 0 (anny clamps the phenotype to [0, 1]): the solver ends on the bound, the fit exact."""
    from bodydata.bodyfit.body import AnnyBody
    from bodydata.bodyfit.fit_registered import RegisteredFitError, RegisteredFitSettings, RegisteredFitter

    body = AnnyBody("notoes_collapse10pc")
    phen = np.array([[0.3, 0.8, 0.0, 0.5, 0.6, 0.4]])
    angles = np.random.default_rng(12).normal(0.0, 8.0, (2, body.n_dofs))
    angles = np.clip(angles, body.rig.lower.numpy(), body.rig.upper.numpy())  # inside the joint limits, as bodies are
    with torch.no_grad():
        posed = body(body.params(2, np.repeat(phen, 2, 0), angles)).posed.numpy()
    fits = RegisteredFitter(body).fit(posed, share_phenotype=True)
    assert max(f.med_mm for f in fits) < 0.1, [f.med_mm for f in fits]
    np.testing.assert_allclose(fits[0].phenotype, fits[1].phenotype, atol=0)  # one phenotype for the subject
    assert 0.0 <= fits[0].phenotype[2] < 0.01
    with pytest.raises(RegisteredFitError, match="phenotype_start"):
        RegisteredFitter(body, RegisteredFitSettings(phenotype_start=(0.5, 0.8, 1.5, 0.5, 0.5, 0.5)))


def test_normal_equations_match_autograd_with_joint_limits_active():
    """J^T J and J^T r of the solver (data by differences, priors exact) against autograd on all residuals."""
    from bodydata.bodyfit.fit_registered import RegisteredFitSettings

    def beyond_limits(angles: torch.Tensor, rig) -> torch.Tensor:
        angles[:, :5] = rig.upper[:5] + 7.0  # some limits exceeded
        angles[:, 5:9] = rig.lower[5:9] - 4.0
        return angles

    prob, x = _two_mesh_problem(np.random.default_rng(4), [0.4, 0.8, 0.3, 0.6, 0.5, 0.5], 10.0,
                                [0.45, 0.75, 0.35, 0.55, 0.45, 0.55], beyond_limits,
                                RegisteredFitSettings(pose_weight=0.1), True)

    def all_residuals(v: torch.Tensor) -> torch.Tensor:
        r, q = prob.residuals(v)
        return torch.cat([r.reshape(-1), q.reshape(-1)])

    jac = torch.autograd.functional.jacobian(all_residuals, x)
    with torch.no_grad():
        r, _ = prob.residuals(x)
        hess, grad = prob._normal_equations(x, r, *prob._jacobians(x, r))
        res = all_residuals(x)
    want_h, want_g = jac.T @ jac, jac.T @ res
    np.testing.assert_allclose(hess.numpy(), want_h.numpy(), atol=1e-4 * float(want_h.abs().max()))
    np.testing.assert_allclose(grad.numpy(), want_g.numpy(), atol=1e-4 * float(want_g.abs().max()))


def _two_mesh_problem(rng, phenotype, spread, start_phenotype, start_angles, settings, share):
    """The solver's problem for two anny-lite bodies (``phenotype``, angles ~ N(0, ``spread``) degrees) seen at every
    40th vertex, and a start vector (``start_phenotype``, ``start_angles(angles, rig)`` of random angles)."""
    from bodydata.bodyfit.body import AnnyBody
    from bodydata.bodyfit.fit_registered import _Problem

    body = AnnyBody("notoes_collapse10pc")
    with torch.no_grad():
        target = body(body.params(2, np.array(phenotype), rng.normal(0.0, spread, (2, body.n_dofs)))).vertices
    eye, zero = torch.as_tensor(np.stack([np.eye(3)] * 2)), torch.zeros(2, 3, dtype=torch.float64)
    prob = _Problem(body, target, torch.arange(0, body.n_vertices, 40), eye, zero,
                    torch.ones(2, dtype=torch.float64), settings, share)
    angles = start_angles(torch.as_tensor(rng.normal(0.0, 10.0, (2, body.n_dofs))), body.rig)
    return prob, prob.initial(torch.tensor([start_phenotype], dtype=torch.float64), angles, zero)


@pytest.mark.parametrize("share", [True, False])
def test_secant_update_explains_the_whole_step_and_keeps_the_blocks(share):
    """The block-wise Broyden update of the solver: the updated block-sparse Jacobian maps the step taken (all
    unknowns) exactly to the residuals' change, for a shared phenotype and for one phenotype per mesh."""
    from bodydata.bodyfit.fit_registered import RegisteredFitSettings

    rng = np.random.default_rng(11)
    prob, x = _two_mesh_problem(rng, [[0.5, 0.8, 0.5, 0.5, 0.5, 0.5]] * 2, 5.0, [0.5, 0.8, 0.5, 0.5, 0.5, 0.5],
                                lambda a, rig: a, RegisteredFitSettings(), share)
    b, k, g = prob.b, prob.k, prob.g
    r, _ = prob.residuals(x)
    m3 = r.shape[1]
    j_per = torch.as_tensor(rng.standard_normal((b, m3, k)))
    j_ph = torch.as_tensor(rng.standard_normal((b, m3, 6)))
    dx = torch.as_tensor(rng.standard_normal(len(x)))
    dr = torch.as_tensor(rng.standard_normal((b, m3)))
    new_per, new_ph = prob._secant(j_per, j_ph, dx, dr)
    assert new_per.shape == j_per.shape and new_ph.shape == j_ph.shape
    for i in range(b):  # mesh i: its group's phenotype columns and its own columns
        gi = slice(0, 6) if g == 1 else slice(6 * i, 6 * i + 6)
        own = slice(6 * g + k * i, 6 * g + k * (i + 1))
        np.testing.assert_allclose((new_ph[i] @ dx[gi] + new_per[i] @ dx[own]).numpy(), dr[i].numpy(), atol=1e-9)
    still = dx.clone()
    still[6 * g + k:] = 0.0           # mesh 1 did not move ...
    if g > 1:
        still[6:12] = 0.0             # ... nor did its own phenotype
        kept_per, _ = prob._secant(j_per, j_ph, still, torch.stack([dr[0], torch.zeros(m3, dtype=dr.dtype)]))
        np.testing.assert_allclose(kept_per[1].numpy(), j_per[1].numpy())  # ... so its block is unchanged


def test_bad_jacobian_every_is_one_line():
    from bodydata.bodyfit.body import AnnyBody
    from bodydata.bodyfit.fit_registered import RegisteredFitError, RegisteredFitSettings, RegisteredFitter

    body = AnnyBody("notoes_collapse10pc")
    for bad in (0, -2, 2.5, True, None):
        with pytest.raises(RegisteredFitError, match="jacobian_every"):
            RegisteredFitter(body, RegisteredFitSettings(jacobian_every=bad))
