"""The embedding as registration prior: a body decoded from known codes, remeshed and moved, converts back; bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bodydata.evaluate.prior_registration import ModelPriorConfig, ModelPriorError, ModelPriorRegistrar
from bodydata.manifest.status import STATUS_DONE, STATUS_FAILED


def _rotation(rotvec) -> np.ndarray:
    from bodydata.features.polar import rotation_exp_torch

    return rotation_exp_torch(torch.tensor([rotvec], dtype=torch.float64))[0].numpy()


@pytest.fixture(scope="module")
def registrar(dhnn_model):
    return ModelPriorRegistrar(dhnn_model, config=ModelPriorConfig(fine_dists=(0.03, 0.02, 0.01)))


@pytest.fixture(scope="module")
def case(registrar):
    """A body decoded from known codes (truth, template connectivity), remeshed (jittered subdivision, shuffled
    order) and moved by a known similarity: (target vertices, faces, landmarks, truth moved, scale)."""
    from bodydata.registration.remesh import remesh_body

    z = 0.7 * torch.randn(1, registrar.n_latent, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        truth = registrar.decode(z)[0].numpy()
    rm = remesh_body(truth, registrar.template.faces, registrar.template.landmarks, seed=1)
    rot, s, t = _rotation([0.3, -0.5, 0.2]), 1.2, np.array([0.5, -1.0, 2.0])
    return s * rm.vertices @ rot.T + t, rm.faces, rm.landmarks, s * truth @ rot.T + t, s


def _med_mm(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    return 1000.0 * float(np.linalg.norm(a - b, axis=1).mean()) / scale


def test_closed_loop_converts_back_with_small_med(registrar, case):
    tv, tf, lm, moved, s = case
    res = registrar.register(tv, tf, lm)
    assert res.status == STATUS_DONE and res.reason == ""
    # the mean body put on the landmarks (the start) is far from the truth; the registration lands on it
    from bodydata.mesh.alignment import align

    tl = [registrar.template.landmarks[k] for k in lm if k in registrar.template.landmarks]
    start = align(registrar.mean_body[tl], tv[[lm[k] for k in lm if k in registrar.template.landmarks]]
                  ).apply(registrar.mean_body)
    assert _med_mm(start, moved, s) > 8.0
    assert _med_mm(res.vertices, moved, s) < 2.5
    assert res.scale == pytest.approx(s, rel=0.02)
    # the result's parts agree: vertices = scale p R^T + t
    np.testing.assert_allclose(res.scale * res.template_frame @ res.rotation.T + res.translation, res.vertices,
                               atol=1e-9)
    assert res.w.shape == (registrar.n_latent,) and [h[0] for h in res.history] == ["coarse"] * 4 + ["fine"] * 3


def test_fine_stage_improves_on_the_decoded_mesh(dhnn_model, case):
    tv, tf, lm, moved, s = case
    coarse = ModelPriorRegistrar(dhnn_model, config=ModelPriorConfig(fine_dists=())).register(tv, tf, lm)
    fine = ModelPriorRegistrar(dhnn_model, config=ModelPriorConfig(fine_dists=(0.03, 0.02, 0.01))).register(tv, tf, lm)
    assert _med_mm(fine.vertices, moved, s) < 0.8 * _med_mm(coarse.vertices, moved, s)


def test_convert_meshes_writes_the_same_rows(registrar, case):
    """The registrar stands in for the sparse-prior Registrar in the conversion layer (rows, metrics, aligned)."""
    from bodydata.registration.convert import ConvertTarget, convert_meshes

    tv, tf, lm, moved, s = case
    few = dict(list(lm.items())[:2])
    done, failed = convert_meshes(registrar, [ConvertTarget("a", tv, tf, lm, "a.ply"),
                                              ConvertTarget("b", tv, tf, few, "b.ply")])
    assert done.done and done.row.p2m_mean_mm / s < 1.0 and done.row.m2p_mean_mm / s < 1.5
    assert done.aligned.shape == (registrar.n, 3)
    assert failed.row.status == STATUS_FAILED and failed.row.reason.startswith("no landmarks: 2 shared")


def test_run_from_another_template_is_one_line(dhnn_model, dhnn_run):
    from bodydata.templates.template import load_template

    other = load_template("anny")
    with pytest.raises(ModelPriorError) as exc:
        ModelPriorRegistrar(dhnn_model, other)
    assert "\n" not in str(exc.value) and "not on 'anny'" in str(exc.value)
    with pytest.raises(ModelPriorError) as exc:
        ModelPriorRegistrar.from_run(dhnn_run, other, device="cpu")
    assert str(exc.value).startswith(str(dhnn_run)) and "\n" not in str(exc.value)


def test_convert_cli_with_a_run_as_prior(registrar, case, dhnn_run, tmp_path, monkeypatch):
    """``bodydata convert --prior RUN``: the run's embedding registers the mesh; conversion.csv names the prior."""
    from click.testing import CliRunner

    from bodydata.cli.main import cli
    from bodydata.mesh import read_mesh, write_mesh
    from bodydata.registration.convert import read_results

    tv, tf, lm, moved, s = case
    root = tmp_path / "meshes"
    root.mkdir()
    write_mesh(root / "body.ply", tv, tf)
    (root / "landmarks.csv").write_text("name,vertex_id\n" + "".join(f"{k},{v}\n" for k, v in lm.items()))
    monkeypatch.setenv("BODYDATA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["convert", "--source", "folder", "--root", str(root), "--template", "anny-lite",
                                   "--prior", str(dhnn_run), "--out", str(out), "--scheduler", "synchronous",
                                   "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    (row,) = read_results(out / "conversion.csv")
    assert row.status == "done" and row.prior == str(dhnn_run.resolve())
    conv = read_mesh(row.out_path).vertices
    assert _med_mm(conv, moved, s) < 4.0

    bad = CliRunner().invoke(cli, ["convert", "--source", "folder", "--root", str(root), "--template", "anny",
                                   "--prior", str(dhnn_run), "--out", str(tmp_path / "out2"), "--quiet"])
    assert bad.exit_code == 2 and "not on 'anny'" in bad.output and len(bad.output.strip().splitlines()) == 1


def test_single_latent_model_as_prior(pca_run):
    """A one-latent model (pca): the code prior is lambda_beta |z|^2 / n; the closed loop holds too."""
    from bodydata.model import load
    from bodydata.registration.remesh import remesh_body

    reg = ModelPriorRegistrar(load(pca_run, device="cpu"), config=ModelPriorConfig(fine_dists=(0.02, 0.01)))
    assert not reg.model.disentangled
    z = 0.7 * torch.randn(1, reg.n_latent, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        truth = reg.decode(z)[0].numpy()
    rm = remesh_body(truth, reg.template.faces, reg.template.landmarks, seed=2)
    res = reg.register(rm.vertices, rm.faces, rm.landmarks)
    assert res.status == STATUS_DONE and _med_mm(res.vertices, truth, 1.0) < 2.5
