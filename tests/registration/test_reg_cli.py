"""CLI: 'bodydata prior build --manifest' writes priors and a report; 'bodydata convert' records failed rows."""
from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from bodydata.cli.main import cli


def test_prior_build_from_manifest(anny_lite_template, tmp_path, monkeypatch):
    from bodydata.mesh import write_mesh

    t = anny_lite_template
    rng = np.random.default_rng(0)
    rows = ["path,status"]
    for k in range(8):
        # smooth random deformations: a random affine map per part, blended by the part weights
        from bodydata.registration.prior import part_weights

        w = part_weights(t.vertices, t.faces, t.part_labels, 0.05)
        a = np.eye(3) + 0.05 * rng.standard_normal((16, 3, 3))
        v = np.einsum("np,pij,nj->ni", w, a, t.vertices)
        write_mesh(tmp_path / f"m{k}.ply", v, t.faces)
        rows.append(f"{tmp_path / f'm{k}.ply'},done")
    rows.append(",failed")   # a failed row of the manifest that wrote the meshes is not a training mesh
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("BODYDATA_CACHE", str(tmp_path / "cache"))
    res = CliRunner().invoke(cli, ["prior", "build", "--template", "anny-lite", "--manifest", str(tmp_path / "m.csv"),
                                   "--components", "16,40", "--holdout", "0.25", "--out", str(tmp_path / "p.npz")])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "p.json").read_text())
    assert [e["K"] for e in rep["priors"]] == [16, 40] and rep["n_heldout"] == 2
    assert (tmp_path / "p_K16.npz").is_file() and (tmp_path / "p_K40.npz").is_file()
    assert rep["priors"][1]["train_med_mm"] < rep["priors"][0]["train_med_mm"]
    bad = CliRunner().invoke(cli, ["prior", "build", "--template", "anny-lite", "--components", "10",
                                   "--out", str(tmp_path / "q.npz")])
    assert bad.exit_code != 0 and "exactly one of" in bad.output
