"""`bodydata fit` and `bodydata evaluate` end to end on the tiny runs: files, exit codes, one-line errors."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from bodydata.cli.main import cli


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def mesh_folder(eval_dataset, tmp_path_factory):
    """Two test meshes and one of another connectivity."""
    from bodydata.dataset.format import read_pairs
    from bodydata.mesh import read_mesh, write_mesh

    folder = tmp_path_factory.mktemp("fit_in")
    rows = [r for r in read_pairs(eval_dataset[0]) if r["split"] == "test" and r["role"] == "pose"][:2]
    for r in rows:
        shutil.copy(r["path"], folder / f"{r['identity'].replace('/', '_')}_{r['pose']}.ply")
    m = read_mesh(rows[0]["path"])
    keep = m.faces[: len(m.faces) // 2]
    used = np.unique(keep)
    remap = np.full(len(m.vertices), -1)
    remap[used] = np.arange(len(used))
    write_mesh(folder / "other_connectivity.ply", m.vertices[used], remap[keep])
    return folder


def test_fit_command_writes_fits_and_records_failures(dhnn_run, mesh_folder, tmp_path):
    out = tmp_path / "fits"
    res = _invoke("fit", "--run", dhnn_run, "--meshes", mesh_folder, "--out", out, "--iterations", 3, "--device", "cpu")
    assert res.exit_code == 1, res.output
    with open(out / "fit.csv", newline="") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    bad = rows.pop("other_connectivity")
    assert bad["status"] == "failed" and "other_connectivity.ply" in bad["reason"] and "\n" not in bad["reason"]
    assert len(rows) == 2 and all(r["status"] == "done" and float(r["med_mm"]) > 0 for r in rows.values())
    for name in rows:
        assert (out / "meshes" / f"{name}.ply").is_file()
        with np.load(out / "codes" / f"{name}.npz") as z:
            assert z["shape"].shape == (50,) and z["pose"].shape == (72,) and z["rotation"].shape == (3, 3)
    again = _invoke("fit", "--run", dhnn_run, "--meshes", mesh_folder, "--out", out, "--iterations", 3,
                    "--device", "cpu")
    assert "(2 already done)" in again.output


def test_fit_command_sparse_markers(dhnn_run, mesh_folder, tmp_path):
    from bodydata.templates.template import load_template

    n_landmarks = len(set(load_template("anny-lite").landmarks.values()))
    out = tmp_path / "markers"
    res = _invoke("fit", "--run", dhnn_run, "--meshes", mesh_folder, "--out", out, "--iterations", 2,
                  "--markers", "landmarks", "--device", "cpu")
    assert res.exit_code == 1  # the mesh of another connectivity still fails
    with open(out / "fit.csv", newline="") as fh:
        done = [r for r in csv.DictReader(fh) if r["status"] == "done"]
    assert len(done) == 2 and all(r["markers"] == str(n_landmarks) and float(r["marker_mm"]) > 0 for r in done)


def test_fit_command_cannot_start(dhnn_run, tmp_path):
    (tmp_path / "empty").mkdir()
    res = _invoke("fit", "--run", dhnn_run, "--meshes", tmp_path / "empty", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "no meshes" in res.output and "Traceback" not in res.output
    res = _invoke("fit", "--run", tmp_path / "nope", "--meshes", tmp_path / "empty", "--out", tmp_path / "o")
    assert res.exit_code == 2 and res.output.count("\n") == 1


def test_evaluate_command_report(dhnn_run, pca_run, eval_dataset, tmp_path):
    out = tmp_path / "report"
    res = _invoke("evaluate", "--run", dhnn_run, "--run", pca_run, "--dataset", eval_dataset[0], "--out", out,
                  "--iterations", 3, "--device", "cpu")
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "report.json").read_text())
    sets = {(r["run"], r["set"], r["codes"]) for r in doc["summary"]}
    assert ("dhnn", "pose", "fit") in sets and ("pca", "neutral", "encoder") in sets
    tests = {(r["run"], r["test"]): r for r in doc["disentangle"]}
    assert tests[("dhnn", "neutral_from_pose")]["count"] == 6  # two test identities x three poses
    assert tests[("dhnn", "pose_transfer")]["count"] == 6  # each neutral with the other identity's three poses
    assert tests[("dhnn", "shape_stability")]["ratio"] > 0
    assert "one latent" in tests[("pca", "all")]["note"]
    # the body-model row: anny fitted to its own bodies (no encoder row); its neutral from a posed body is anny's
    # phenotype at the reference pose, so it lands near the truth
    assert ("anny-body-model", "pose", "fit") in sets and ("anny-body-model", "pose", "encoder") not in sets
    fit_rows = {r["set"]: r for r in doc["summary"] if r["run"] == "anny-body-model"}
    assert fit_rows["pose"]["mean"] < 8.0 and fit_rows["neutral"]["mean"] < 8.0, fit_rows  # measured 5.0 / <5
    assert tests[("anny-body-model", "neutral_from_pose")]["mean"] < 10.0
    assert tests[("anny-body-model", "pose_transfer")]["count"] == 6
    for name in ("ced_pose.png", "ced_neutral.png", "error_dhnn_pose_median_front.png", "error_pca_neutral_worst_back.png"):
        assert (out / name).stat().st_size > 1000
    assert "dhnn" in (out / "report.md").read_text()
    # Table 5: both runs fitted from the template's 27 landmarks, on both test sets
    sparse = {(r["run"], r["set"]): r for r in doc["sparse"]["rows"]}
    assert set(sparse) == {(run, s) for run in ("dhnn", "pca") for s in ("neutral", "pose")}
    assert all(r["k"] == 27 and r["markers"] == "landmarks" and r["mean"] > 0 for r in sparse.values())
    assert "Table 5" in (out / "report.md").read_text()


def test_evaluate_rejects_a_run_of_another_template(dhnn_run, eval_dataset, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(dhnn_run, other)
    card = json.loads((other / "card.json").read_text())
    card["template"]["digest"] = "0" * 64
    (other / "card.json").write_text(json.dumps(card))
    res = _invoke("evaluate", "--run", other, "--dataset", eval_dataset[0], "--out", tmp_path / "r", "--no-figures",
                  "--iterations", 1, "--no-body-model")
    assert res.exit_code == 1 and "another template" in res.output
    res = _invoke("evaluate", "--run", other, "--dataset", tmp_path / "nope", "--out", tmp_path / "r")
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_pose_transfer_truth_reproduces_the_generator(eval_dataset):
    from bodydata.dataset.format import read_pairs
    from bodydata.generator.transfer import PoseTransferTruth, truth_of_mesh
    from bodydata.mesh import read_mesh

    posed = [r for r in read_pairs(eval_dataset[0]) if r["role"] == "pose"]
    a = next(r for r in posed if r["identity"] != posed[0]["identity"])
    ta, tb = truth_of_mesh(a["path"]), truth_of_mesh(posed[0]["path"])
    truth = PoseTransferTruth(tb["topology"])
    assert np.allclose(truth(tb, tb), read_mesh(posed[0]["path"]).vertices, atol=1e-9)  # own shape, own pose
    moved = truth(ta, tb)  # A in B's pose: A's body, so neither mesh
    assert np.abs(moved - read_mesh(posed[0]["path"]).vertices).max() > 1e-3
    assert truth_of_mesh(eval_dataset[0] / "pairs.csv") is None
