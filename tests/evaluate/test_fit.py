"""Eq. 15 fitting (Adam and Levenberg–Marquardt): closed loop on meshes decoded from known codes, a known rigid motion,
markers, monotone LM energy, batch independence."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bodydata.evaluate.fit import FitError, FitSettings, MeshFitter


def _rotation(rotvec) -> np.ndarray:
    from bodydata.features.polar import rotation_exp_torch

    return rotation_exp_torch(torch.tensor([rotvec], dtype=torch.float64))[0].numpy()


@pytest.fixture(scope="module")
def known(dhnn_model):
    """Codes (2, L), their decoded meshes (2, n, 3) and a rigid motion."""
    fitter = MeshFitter(dhnn_model, FitSettings())
    z = 0.5 * torch.randn(2, fitter.n_latent, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        v = fitter.decode_vertices(z).numpy()
    return z.numpy(), v, _rotation([0.2, -0.4, 0.3]), np.array([0.1, -0.05, 0.3])


def test_closed_loop_recovers_the_decoded_mesh(dhnn_model, known):
    z, v, rot, t = known
    fitter = MeshFitter(dhnn_model, FitSettings(iterations=60, tolerance=0.0, solver="adam"))
    start = z + 0.3 * np.random.default_rng(0).standard_normal(z.shape).astype(np.float32)
    res = fitter.fit(v @ rot.T + t, start=start)
    assert res.start_med_mm.min() > 3.0  # the perturbed start is visibly wrong ...
    assert np.all(res.med_mm < 0.35 * res.start_med_mm)  # ... and the fit gets most of the way back
    # the fitted codes explain the target better than the starting codes under Eq. 15 itself
    tgt = torch.as_tensor(v @ rot.T + t)
    rr = torch.as_tensor(res.rotation)
    tt = torch.as_tensor(res.translation)
    with torch.no_grad():
        e_fit = fitter.energy(torch.as_tensor(res.z), rr, tt, tgt).numpy()
        e_start = fitter.energy(torch.as_tensor(start), rr, tt, tgt).numpy()
    assert np.allclose(e_fit, res.energy, rtol=1e-6) and np.all(e_fit < 0.2 * e_start)
    assert res.shape.shape == (2, 50) and res.pose.shape == (2, 72) and np.array_equal(res.z[:, :50], res.shape)


def test_rigid_part_recovers_a_known_motion(dhnn_model, known):
    z, v, rot, t = known
    res = MeshFitter(dhnn_model, FitSettings(iterations=10, solver="adam")).fit(v @ rot.T + t, start=z)
    assert np.allclose(res.rotation, rot[None], atol=1e-3)
    assert np.allclose(res.translation, t[None], atol=1e-3)
    assert np.all(res.med_mm < 0.5)
    assert np.allclose(res.vertices, v @ rot.T + t, atol=2e-3)
    # without the rigid part the motion cannot be explained: alignment "none" leaves a large error
    none = MeshFitter(dhnn_model, FitSettings(iterations=3, rigid=False, solver="adam")).fit(v @ rot.T + t, start=z)
    assert np.all(none.med_mm > 50.0) and np.allclose(none.rotation, np.eye(3))


@pytest.mark.parametrize("solver, steps", [("adam", 40), ("lm", 5)])
def test_sparse_markers_fit_the_markers(dhnn_model, known, solver, steps):
    z, v, rot, t = known
    markers = np.arange(0, v.shape[1], 30)
    fitter = MeshFitter(dhnn_model, FitSettings(iterations=steps, tolerance=0.0, solver=solver), markers=markers)
    start = z + 0.3 * np.random.default_rng(1).standard_normal(z.shape).astype(np.float32)
    res = fitter.fit(v @ rot.T + t, start=start)
    on_markers = 1000 * np.linalg.norm(res.vertices[:, markers] - (v @ rot.T + t)[:, markers], axis=-1).mean(1)
    assert np.all(on_markers < res.start_med_mm)
    with pytest.raises(FitError, match="markers"):
        MeshFitter(dhnn_model, markers=[0, 1, v.shape[1]])


@pytest.mark.parametrize("settings", [FitSettings(iterations=15, patience=5, tolerance=1e-3, solver="adam"),
                                      FitSettings(iterations=6, tolerance=1e-3, solver="lm"),
                                      FitSettings(iterations=8, tolerance=1e-3, solver="lm", jacobian_every=3),
                                      FitSettings()],
                         ids=["adam", "lm", "lm-broyden", "default"])
def test_batch_size_does_not_change_results(dhnn_model, known, settings):
    z, v, rot, t = known
    fitter = MeshFitter(dhnn_model, settings)
    start = z + 0.2
    both = fitter.fit(v, start=start)
    one = fitter.fit(v[1:], start=start[1:])
    assert both.iterations[1] == one.iterations[0]
    assert np.allclose(both.z[1], one.z[0], atol=1e-4)
    assert np.allclose(both.med_mm[1], one.med_mm[0], rtol=1e-4)


def test_encoder_start_uses_the_meshes_features(dhnn_model, eval_dataset):
    from bodydata.evaluate.reconstruction import load_test_meshes

    m = load_test_meshes(eval_dataset[0])["pose"]
    fitter = MeshFitter(dhnn_model, FitSettings(iterations=0))
    computed = fitter.features(m.vertices[:1])
    assert np.allclose(computed, m.f[:1], atol=1e-4)  # the same ACAP features the dataset stored
    res = fitter.fit(m.vertices[:1])
    assert res.iterations[0] == 0 and np.allclose(res.med_mm, res.start_med_mm)


def test_bad_targets_get_one_line(dhnn_model):
    fitter = MeshFitter(dhnn_model)
    with pytest.raises(FitError, match="template's connectivity"):
        fitter.fit(np.zeros((1, 10, 3)))
    with pytest.raises(FitError, match="init"):
        MeshFitter(dhnn_model, FitSettings(init="random"))
    with pytest.raises(FitError, match="solver"):
        MeshFitter(dhnn_model, FitSettings(solver="bfgs"))
    for bad in (0, None, True, 2.5):
        with pytest.raises(FitError, match="jacobian_every"):
            MeshFitter(dhnn_model, FitSettings(jacobian_every=bad))


@pytest.mark.parametrize("every", [1, 4])
def test_lm_recovers_codes_and_motion_closely(dhnn_model, known, every):
    """LM from perturbed codes and the start's Kabsch motion: the decoded mesh, its codes and the known R, t come back
    far closer than Adam's closed loop test needs (0.35 x the start's error, 3 mm here), with an exact Jacobian at
    every step and with Broyden updates between exact ones every 4 kept steps."""
    z, v, rot, t = known
    fitter = MeshFitter(dhnn_model, FitSettings(iterations=25 if every == 1 else 40, tolerance=0.0, solver="lm",
                                                jacobian_every=every))
    start = z + 0.3 * np.random.default_rng(0).standard_normal(z.shape).astype(np.float32)
    res = fitter.fit(v @ rot.T + t, start=start)
    assert res.start_med_mm.min() > 3.0
    assert np.all(res.med_mm < 0.1)  # 0.02 mm here; Adam's 60 steps reach 1.7 mm from the same start
    assert np.allclose(res.rotation, rot[None], atol=1e-3)
    assert np.allclose(res.translation, t[None], atol=1e-3)
    # the exact codes have a lower Eq. 15 than anything far from them: the fit lands near z (up to the prior's pull)
    with torch.no_grad():
        e_true = fitter.energy(torch.as_tensor(z), torch.as_tensor(rot[None]).expand(2, 3, 3),
                               torch.as_tensor(t[None]).expand(2, 3), torch.as_tensor(v @ rot.T + t)).numpy()
    assert np.all(res.energy <= e_true * 1.01)
    assert np.abs(res.z - z).max() < 0.15 * np.abs(start - z).max()


@pytest.mark.parametrize("every", [1, 4])
def test_lm_energy_never_increases(dhnn_model, known, every):
    from bodydata.evaluate.fit_lm import lm_fit

    z, v, rot, t = known
    fitter = MeshFitter(dhnn_model, FitSettings(iterations=12, tolerance=0.0, solver="lm", jacobian_every=every))
    start = torch.as_tensor(z + 0.5 * np.random.default_rng(2).standard_normal(z.shape).astype(np.float32))
    target = torch.as_tensor(v @ rot.T + t)
    r0 = torch.as_tensor(_rotation([0.1, -0.3, 0.2]))[None].expand(2, 3, 3).contiguous()
    zf, rf, tf, steps, history = lm_fit(fitter, start, r0, torch.as_tensor(t[None]).expand(2, 3).clone(), target)
    e = torch.stack(history).numpy()                      # (steps + 1, B)
    assert len(e) == int(steps.max()) + 1 and int(steps.max()) > 3
    assert np.all(np.diff(e, axis=0) <= 0.0)              # every kept step lowers Eq. 15, a rejected one keeps it
    assert np.all(e[-1] < 0.01 * e[0])
    with torch.no_grad():                                 # the history is Eq. 15 itself at the returned state
        assert np.allclose(fitter.energy(zf, rf, tf, target).numpy(), e[-1], rtol=1e-6 if every == 1 else 1e-5)  # float32, other batch


def test_broyden_steps_spare_exact_jacobians(dhnn_model, known, monkeypatch):
    """Counted exact Jacobians (one per mesh and call): Broyden updates between them need far fewer for the same steps,
    and the updated fit still lands where the exact one does."""
    import bodydata.evaluate.fit_lm as fit_lm

    calls = []
    exact = fit_lm._code_jacobian

    def counted(fitter, z):
        calls.append(len(z))
        return exact(fitter, z)

    monkeypatch.setattr(fit_lm, "_code_jacobian", counted)
    z, v, rot, t = known
    start = z + 0.3 * np.random.default_rng(0).standard_normal(z.shape).astype(np.float32)
    used, med = {}, {}
    for every in (1, 4):
        calls.clear()
        res = MeshFitter(dhnn_model, FitSettings(iterations=16, tolerance=0.0, solver="lm",
                                                 jacobian_every=every)).fit(v @ rot.T + t, start=start)
        used[every], med[every] = sum(calls), res.med_mm
    assert used[1] >= 2 * 8       # nearly one per step and mesh (a failed step reuses its Jacobian)
    assert used[4] <= used[1] / 2
    assert np.all(med[4] < 0.2)   # both near the decoded mesh (exact: 0.02 mm)
