"""Scan fitting: closed loop on remeshed, moved bodies decoded from known codes (meshes and point clouds), a shared
shape over two poses, PMD against a hand computation, the files, the command and its one-line errors."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bodydata.errors import BodydataError
from bodydata.evaluate.fit import FitError
from bodydata.evaluate.fit_scan import (
    LandmarkStart,
    ScanFitSettings,
    ScanFitter,
    ScanTarget,
    Similarity,
    point_to_mesh_mm,
)
from bodydata.mesh.pointcloud import pca_normals

FAST = ScanFitSettings(round_iterations=30)


def _rotation(rotvec) -> np.ndarray:
    from bodydata.features.polar import rotation_exp_torch

    return rotation_exp_torch(torch.tensor([rotvec], dtype=torch.float64))[0].numpy()


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1))))


@pytest.fixture(scope="module")
def fitter(dhnn_model):
    return ScanFitter(dhnn_model, FAST)


@pytest.fixture(scope="module")
def known(fitter):
    """Codes (3, L): two poses of identity 0 and identity 1; decoded bodies (3, n, 3); a rigid motion."""
    g = torch.Generator().manual_seed(0)
    lg = fitter.model.net.latent_groups()
    z = 0.5 * torch.randn(3, fitter.mesh.n_latent, generator=g)
    z[1, lg["shape"]] = z[0, lg["shape"]]
    with torch.no_grad():
        v = fitter.mesh.decode_vertices(z).numpy()
    return z.numpy(), v, _rotation([0.2, -0.4, 0.3]), np.array([0.1, -0.05, 0.3])


def _scan(fitter, body, rot, t, seed, cloud=False, scale=1.0, name="scan"):
    from bodydata.registration.remesh import remesh_body

    tpl = fitter.template
    rb = remesh_body(body, tpl.faces, tpl.landmarks, seed=seed)
    return ScanTarget(name, scale * rb.vertices @ rot.T + t, None if cloud else rb.faces, rb.landmarks)


@pytest.mark.parametrize("cloud", [False, True], ids=["mesh", "point_cloud"])
def test_closed_loop_fits_a_remeshed_moved_body(fitter, known, cloud):
    _, v, rot, t = known
    tg = _scan(fitter, v[2], rot, t, seed=1, cloud=cloud)
    assert len(tg.points) > 2 * v.shape[1]  # another connectivity, shuffled
    res = fitter.fit([tg])
    truth = v[2] @ rot.T + t
    start_med = 1000 * np.linalg.norm(res.start[0].apply(fitter.reference_np) - truth, axis=1).mean()
    med = 1000 * np.linalg.norm(res.vertices[0] - truth, axis=1).mean()
    assert start_med > 10.0 and med < 4.0 and med < 0.25 * start_med
    # the rigid motion comes back (up to the few mm / degree by which the fitted codes place the body differently)
    assert _angle_deg(res.rotation[0], rot) < 3.0
    assert np.linalg.norm(res.translation[0] - t) < 0.025
    assert res.scale[0] == pytest.approx(1.0) and res.overlap[0] > 0.7
    # the fitted mesh is the decoded fitted codes moved by the fitted similarity
    with torch.no_grad():
        p = fitter.mesh.decode_vertices(torch.as_tensor(res.z)).numpy()[0]
    assert np.allclose(res.scale[0] * p @ res.rotation[0].T + res.translation[0], res.vertices[0], atol=1e-6)


def test_fit_scale_recovers_a_scans_units(dhnn_model, known):
    _, v, rot, t = known
    f = ScanFitter(dhnn_model, ScanFitSettings(round_iterations=30, fit_scale=True))
    res = f.fit([_scan(f, v[2], rot, t, seed=2, scale=1.1)])
    assert res.scale[0] == pytest.approx(1.1, rel=0.02)
    assert 1000 * np.linalg.norm(res.vertices[0] - 1.1 * v[2] @ rot.T - t, axis=1).mean() < 5.0


def test_share_shape_one_shape_code_per_subject(fitter, known):
    _, v, rot, t = known
    targets = [_scan(fitter, v[i], rot, t, seed=i) for i in (0, 1)]
    res = fitter.fit(targets, groups=[7, 7])
    assert np.array_equal(res.shape[0], res.shape[1]) and not np.array_equal(res.pose[0], res.pose[1])
    assert list(res.groups) == [0, 0]
    for i in (0, 1):
        assert 1000 * np.linalg.norm(res.vertices[i] - (v[i] @ rot.T + t), axis=1).mean() < 4.0
    alone = fitter.fit(targets)
    assert not np.array_equal(alone.shape[0], alone.shape[1])


def test_scans_of_a_batch_do_not_interact(dhnn_model, known):
    _, v, rot, t = known
    f = ScanFitter(dhnn_model, ScanFitSettings(round_iterations=4))
    targets = [_scan(f, v[i], rot, t, seed=i) for i in (0, 2)]
    both = f.fit(targets)
    for i, tg in enumerate(targets):
        alone = f.fit([tg])
        assert np.allclose(both.vertices[i], alone.vertices[0], atol=1e-5)
        assert np.allclose(both.z[i], alone.z[0], atol=1e-4)


def test_share_shape_needs_a_disentangled_model(pca_run, known):
    from bodydata.model import load

    f = ScanFitter(load(pca_run, device="cpu"), FAST)
    _, v, rot, t = known
    tg = [_scan(f, v[0], rot, t, seed=0)] * 2
    with pytest.raises(FitError, match="one latent vector"):
        f.fit(tg, groups=[0, 0])


def test_pmd_with_and_without_hands_by_hand():
    """A unit square in z = 0, split along its diagonal, corners 0, 1 on hand_L, 2, 3 on the chest."""
    from bodydata.templates.parts import PART_NAMES

    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    labels = np.array([PART_NAMES.index("hand_L")] * 2 + [PART_NAMES.index("chest")] * 2)
    pts = np.array([[0.1, 0.2, 0.3],     # above the square, nearest corner 0 (hand): 0.3
                    [0.9, 0.8, -0.2],    # below, nearest corner 2 (chest): 0.2
                    [0.2, 0.9, 0.5],     # above, nearest corner 3 (chest): 0.5
                    [1.3, 0.1, 0.4],     # beside edge 1-2 at (1, 0.1): sqrt(0.09 + 0.16) = 0.5, corner 1 (hand)
                    [-0.3, 1.4, 0.0]])   # beyond corner 3: 0.5 (chest)
    d = point_to_mesh_mm(pts, v, f, labels, PART_NAMES)
    expected = 1000 * np.array([0.3, 0.2, 0.5, 0.5, 0.5])
    assert np.allclose(d.distance_mm, expected)
    assert list(d.on_hand) == [True, False, False, True, False]
    assert d.pmd_mm == pytest.approx((200 + 500 + 500) / 3)
    assert d.pmd_wh_mm == pytest.approx(expected.mean())
    s = d.summary()
    assert s["pmd_median_mm"] == pytest.approx(500) and s["pmd_mm"] == pytest.approx(d.pmd_mm)


def test_pca_normals_of_a_plane_and_their_orientation():
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(-1, 1, (200, 2)), np.zeros(200)] @ _rotation([0.3, 0.1, 0]).T
    n = pca_normals(pts, k=8)
    normal = _rotation([0.3, 0.1, 0])[:, 2]
    assert np.allclose(np.abs(n @ normal), 1.0)
    tg = ScanTarget("plane", pts)
    assert not tg.oriented
    tg.orient(np.array([[0, 0, 0.0]]), -normal[None])
    assert tg.oriented and np.allclose(tg.normals @ normal, -1.0)


def test_landmark_start_is_the_similarity_of_the_landmarks(fitter):
    ref = fitter.reference_np
    rot, t = _rotation([0.1, 0.5, -0.2]), np.array([0.3, 0.0, -1.0])
    lm = fitter.template.landmarks
    tg = ScanTarget("moved", 1.2 * ref @ rot.T + t, fitter.template.faces, lm)
    for scale, s_expected in ((True, 1.2), (False, 1.0)):
        sim = LandmarkStart(lm, scale=scale)(tg, ref)
        assert sim.scale == pytest.approx(s_expected) and np.allclose(sim.rotation, rot, atol=1e-9)
    with pytest.raises(FitError, match="no landmarks"):
        LandmarkStart(lm)(ScanTarget("bare", ref), ref)
    squashed = ScanTarget("squashed", 1000 * ref * [1, 1, 0.01], fitter.template.faces, lm)  # mm, flattened
    with pytest.raises(FitError, match=r"squashed: its landmarks are .* other units"):
        LandmarkStart(lm)(squashed, ref)


def test_a_start_hook_replaces_the_landmarks(dhnn_model, known):
    _, v, rot, t = known
    calls = []

    def hook(target, reference):
        calls.append(target.name)
        return Similarity(1.0, rot, t)

    f = ScanFitter(dhnn_model, ScanFitSettings(round_iterations=4), start=hook)
    tg = _scan(f, v[2], rot, t, seed=0)
    tg.landmarks = None
    res = f.fit([tg])
    assert calls == ["scan"] and np.allclose(res.start[0].rotation, rot)


# ---------------------------------------------------------------- files and command
def _invoke(*args):
    from bodydata.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def scan_folder(fitter, known, tmp_path_factory):
    """anna_0, anna_1 (two poses of one identity, landmarks given), bob_0 (no landmark file)."""
    from bodydata.mesh import write_mesh
    from bodydata.templates.landmarks import write_landmarks_csv

    _, v, rot, t = known
    root = tmp_path_factory.mktemp("scans")
    (root / "scans").mkdir()
    (root / "lm").mkdir()
    for name, i in (("anna_0", 0), ("anna_1", 1), ("bob_0", 2)):
        tg = _scan(fitter, v[i], rot, t, seed=i)
        write_mesh(root / "scans" / f"{name}.ply", tg.points * 1000.0, tg.faces)  # millimetres
        if name != "bob_0":
            write_landmarks_csv(root / "lm" / f"{name}.csv", tg.landmarks)
    return root


def test_fit_command_on_scans_shares_shapes_and_reports_pmd(dhnn_run, scan_folder, tmp_path):
    out = tmp_path / "fits"
    res = _invoke("fit", "--run", dhnn_run, "--target-kind", "scan", "--meshes", scan_folder / "scans",
                  "--landmarks", scan_folder / "lm", "--share-shape", "--units", "mm", "--iterations", 100,
                  "--out", out, "--device", "cpu")
    assert res.exit_code == 1, res.output
    with open(out / "fit.csv", newline="") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    bad = rows.pop("bob_0")
    assert bad["status"] == "failed" and "bob_0.ply" in bad["reason"] and "no landmarks" in bad["reason"]
    assert "failed:" in res.output and len(res.output.strip().splitlines()) == 2
    for r in rows.values():
        assert r["status"] == "done" and r["subject"] == "anna" and r["shared_shape"] == "2"
        assert 0 < float(r["pmd_mm"]) <= float(r["pmd_p95_mm"]) and float(r["pmd_wh_mm"]) > 0
        assert float(r["pmd_mm"]) < 3.0 and int(r["iterations"]) == 100
    from bodydata.mesh import read_mesh
    from bodydata.templates.template import load_template

    codes = [np.load(out / "codes" / f"anna_{i}.npz") for i in (0, 1)]
    assert np.array_equal(codes[0]["shape"], codes[1]["shape"])
    fitted = read_mesh(out / "meshes" / "anna_0.ply")
    scan = read_mesh(scan_folder / "scans" / "anna_0.ply")
    assert np.abs(fitted.vertices).max() > 100  # written back in the scan's millimetres
    tpl = load_template("anny-lite")
    d = point_to_mesh_mm(scan.vertices / 1000, fitted.vertices / 1000, fitted.faces, tpl.part_labels, tpl.part_names)
    assert d.pmd_mm == pytest.approx(float(rows["anna_0"]["pmd_mm"]), abs=1e-3)
    again = _invoke("fit", "--run", dhnn_run, "--target-kind", "scan", "--meshes", scan_folder / "scans",
                    "--landmarks", scan_folder / "lm", "--share-shape", "--units", "mm", "--iterations", 100,
                    "--out", out, "--device", "cpu")
    assert again.exit_code == 1 and "1 failed" in again.output and "(2 already done)" in again.output


def test_scan_inputs_subjects_from_a_csv_or_the_file_name(scan_folder, tmp_path):
    from bodydata.evaluate.fit_scan_files import list_scan_inputs

    by_name = {i.name: i for i in list_scan_inputs(scan_folder / "scans", scan_folder / "lm", units="mm")}
    assert by_name["anna_1"].subject == "anna" and by_name["bob_0"].subject == "bob"
    assert by_name["bob_0"].landmarks is None and by_name["anna_0"].landmarks.name == "anna_0.csv"
    table = tmp_path / "scans.csv"
    table.write_text("path,subject,source,units\n"
                     f"{scan_folder / 'scans' / 'anna_0.ply'},7,faust,mm\n{scan_folder / 'scans' / 'bob_0.ply'},7,caesar,mm\n")
    rows = list_scan_inputs(table)
    assert [r.subject for r in rows] == ["faust_7", "caesar_7"] and rows[0].units == "mm"
    with pytest.raises(BodydataError, match="subject"):
        list_scan_inputs(scan_folder / "scans", subject_regex=r"(\w+)_")


def test_fit_command_bad_scan_input_gets_one_line(dhnn_run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _invoke("fit", "--run", dhnn_run, "--target-kind", "scan", "--meshes", empty, "--out", tmp_path / "o")
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1 and "no meshes" in res.output
    res = _invoke("fit", "--run", dhnn_run, "--meshes", empty, "--out", tmp_path / "o", "--share-shape")
    assert res.exit_code == 2 and "--share-shape not with --target-kind mesh" in res.output
    res = _invoke("fit", "--run", dhnn_run, "--target-kind", "scan", "--meshes", empty, "--out", tmp_path / "o",
                  "--markers", "landmarks")
    assert res.exit_code == 2 and "--markers not with --target-kind scan" in res.output
