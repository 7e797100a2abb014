"""`bodydata features` and `bodydata reconstruct` end to end on a few anny-lite bodies."""
from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from bodydata.cli.main import cli
from bodydata.mesh import read_mesh, write_mesh


def test_features_and_reconstruct_commands(anny_lite_template_dir, anny_lite_template, anny_lite_bodies, tmp_path):
    verts, faces = anny_lite_bodies
    tpl = anny_lite_template
    if not np.array_equal(tpl.faces, faces):
        faces = tpl.faces  # pose with the anny vertices, write with the template's triangles
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    for k, v in enumerate(verts):
        write_mesh(meshes / f"body{k}.ply", v, tpl.faces)
    out = tmp_path / "f.npz"
    runner = CliRunner()
    res = runner.invoke(cli, ["features", "--template", str(anny_lite_template_dir), "--meshes", str(meshes),
                              "--out", str(out), "--coarse"])
    assert res.exit_code == 0, res.output
    with np.load(out) as z:
        assert z["f"].shape == (4, tpl.n_vertices, 9) and z["g"].shape == (4, 16, 9)
        assert list(z["names"]) == [f"body{k}" for k in range(4)]
        assert z["f_min"].shape == (tpl.n_vertices, 9)
    res = runner.invoke(cli, ["reconstruct", "--template", str(anny_lite_template_dir), "--features", str(out),
                              "--out", str(tmp_path / "rec")])
    assert res.exit_code == 0, res.output
    back = read_mesh(tmp_path / "rec" / "body2.ply").vertices
    med = np.linalg.norm((back - back.mean(0)) - (verts[2] - verts[2].mean(0)), axis=1).mean()
    assert med < 3e-3


def test_features_command_rejects_other_connectivity(anny_lite_template_dir, anny_lite_template, tmp_path):
    tpl = anny_lite_template
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    faces = tpl.faces.copy()
    # flip the edge shared by face 0 and a neighbour: same counts, another connectivity
    a, b, c = faces[0]
    k = next(k for k in range(1, len(faces)) if {b, c} <= set(faces[k].tolist()))
    d = (set(faces[k].tolist()) - {b, c}).pop()
    faces[0], faces[k] = (a, b, d), (a, d, c)
    write_mesh(meshes / "other.ply", tpl.vertices, faces)
    ok = meshes.parent / "reordered"
    ok.mkdir()
    write_mesh(ok / "same.ply", tpl.vertices, np.roll(tpl.faces[::-1], 1, axis=1))   # same triangles, other order
    res = CliRunner().invoke(cli, ["features", "--template", str(anny_lite_template_dir), "--meshes", str(ok),
                                   "--out", str(tmp_path / "ok.npz")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["features", "--template", str(anny_lite_template_dir), "--meshes", str(meshes),
                                   "--out", str(tmp_path / "f.npz")])
    assert res.exit_code != 0
    assert "other.ply" in res.output and "connectivity" in res.output
    assert "Traceback" not in res.output
