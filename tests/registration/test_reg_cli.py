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


def test_prior_build_from_a_sources_scan_manifest(anny_lite_template, tmp_path, monkeypatch):
    """Defect: 'bodydata sources scan' writes status 'ok' (the legacy word for done) and relative paths; 'prior build
    --manifest' on that file trained on nothing ("no meshes"). Every scanned mesh is a training mesh; a mesh that
    failed the scan is not."""
    from bodydata.mesh import write_mesh
    from bodydata.registration.prior import SparsePrior, part_weights

    t = anny_lite_template
    rng = np.random.default_rng(1)
    w = part_weights(t.vertices, t.faces, t.part_labels, 0.05)
    data = tmp_path / "meshes"
    data.mkdir()
    for k in range(6):
        a = np.eye(3) + 0.05 * rng.standard_normal((16, 3, 3))
        write_mesh(data / f"m{k}.ply", np.einsum("np,pij,nj->ni", w, a, t.vertices), t.faces)
    (data / "broken.ply").write_bytes(b"ply\nnonsense\n")
    monkeypatch.setenv("BODYDATA_CACHE", str(tmp_path / "cache"))
    scan = CliRunner().invoke(cli, ["sources", "scan", "--source", "folder", "--root", str(data),
                                    "--out", str(tmp_path / "sources.csv"), "--quiet"])
    assert (tmp_path / "sources.csv").is_file(), scan.output
    res = CliRunner().invoke(cli, ["prior", "build", "--template", "anny-lite", "--manifest",
                                   str(tmp_path / "sources.csv"), "--components", "16", "--holdout", "0",
                                   "--out", str(tmp_path / "p.npz")])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "p.json").read_text())
    assert (rep["n_train"], rep["n_heldout"]) == (6, 0)
    assert SparsePrior.load(tmp_path / "p.npz").K == 16
    # a manifest with no usable row cannot start: exit status 2 and the file named
    (tmp_path / "none.csv").write_text("path,status\nx.ply,failed\n")
    none = CliRunner().invoke(cli, ["prior", "build", "--template", "anny-lite", "--manifest",
                                    str(tmp_path / "none.csv"), "--components", "16", "--out", str(tmp_path / "q.npz")])
    assert none.exit_code == 2 and "none.csv" in none.output and "no meshes" in none.output, none.output
