"""'bodydata prior lift': coarse pose files carried onto a fine mesh; a bad file is a failed row; re-runs skip."""
from __future__ import annotations

import csv

import numpy as np
import trimesh
from click.testing import CliRunner

from bodydata.cli.main import cli
from bodydata.mesh import read_mesh, write_mesh


def test_prior_lift_folder(tmp_path):
    cage = trimesh.creation.icosphere(subdivisions=2)
    fine = trimesh.creation.icosphere(subdivisions=3)
    fv = fine.vertices * 1.03
    write_mesh(tmp_path / "cage.ply", cage.vertices, cage.faces)
    write_mesh(tmp_path / "fine.ply", fv, fine.faces)
    poses = tmp_path / "poses"
    poses.mkdir()
    r = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    write_mesh(poses / "a.obj", cage.vertices @ r.T + 0.5, cage.faces)
    write_mesh(poses / "b.obj", 2.0 * cage.vertices, cage.faces)
    small = trimesh.creation.icosphere(subdivisions=1)                      # another connectivity
    write_mesh(poses / "c.obj", small.vertices, small.faces)
    args = ["prior", "lift", "--cage-rest", str(tmp_path / "cage.ply"), "--fine-rest", str(tmp_path / "fine.ply"),
            "--poses", str(poses), "--out", str(tmp_path / "out"), "--quiet"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output
    assert "lifted 2 poses, 1 failed" in res.output
    with open(tmp_path / "out" / "lifted.csv", newline="") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    assert rows["a"]["status"] == "done" and rows["c"]["status"] == "failed"
    assert "c.obj" in rows["c"]["reason"] and "42" in rows["c"]["reason"]
    a = read_mesh(rows["a"]["path"])
    assert np.allclose(a.vertices, fv @ r.T + 0.5, atol=1e-5)      # written as float32
    assert np.array_equal(a.faces, fine.faces)
    assert np.allclose(read_mesh(rows["b"]["path"]).vertices, 2.0 * fv, atol=1e-5)
    before = (tmp_path / "out" / "a.ply").stat().st_mtime_ns
    CliRunner().invoke(cli, args)
    assert (tmp_path / "out" / "a.ply").stat().st_mtime_ns == before
