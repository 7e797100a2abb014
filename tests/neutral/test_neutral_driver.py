"""Manifest driver and CLI: outputs, failure rows, skip on re-run, atomic CSV."""
from __future__ import annotations

import csv

from click.testing import CliRunner

from bodydata.mesh import read_mesh, write_mesh


def _manifest(tmp_path, bodies, faces):
    rows = []
    for i in range(2):
        for j in range(bodies["poses"].shape[1]):
            p = tmp_path / "meshes" / f"s{i}_{j}.ply"
            write_mesh(p, bodies["poses"][i, j], faces)
            rows.append({"id": f"anny/s{i}_{j}", "subject": str(i), "pose": str(j), "path": f"meshes/{p.name}", "status": "ok"})
    bad = tmp_path / "meshes" / "s9_0.ply"
    bad.write_bytes(b"ply\nformat garbage\n")
    rows.append({"id": "anny/s9_0", "subject": "9", "pose": "0", "path": "meshes/s9_0.ply", "status": "ok"})
    rows.append({"id": "anny/s8_0", "subject": "8", "pose": "0", "path": "meshes/s0_0.ply", "status": "failed"})
    man = tmp_path / "manifest.csv"
    with open(man, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return man


def test_cli_writes_meshes_rows_and_skips_done(tmp_path, anny_lite_template, anny_lite_bodies, monkeypatch):
    from bodydata.cli.main import cli
    from bodydata.mesh.alignment import mean_euclidean_distance

    tpl_dir = anny_lite_template.save(tmp_path / "tpl")
    # A template folder is not named 'anny-lite', so pass the target as a mesh file.
    target = tmp_path / "target.ply"
    write_mesh(target, anny_lite_template.vertices, anny_lite_template.faces)
    man = _manifest(tmp_path, anny_lite_bodies, anny_lite_template.faces)
    out = tmp_path / "out"
    args = ["neutralize", "--manifest", str(man), "--template", str(tpl_dir), "--target", str(target), "--out", str(out), "--quiet"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output  # one subject failed: the exit status says so
    assert "2 done, 1 failed, 0 skipped" in res.output
    rows = {r["subject"]: r for r in csv.DictReader(open(out / "neutral.csv"))}
    assert set(rows) == {"0", "1", "9"}  # the status=failed manifest row is not a subject
    assert rows["9"]["status"] == "failed" and "no usable pose" in rows["9"]["reason"]
    for s in ("0", "1"):
        r = rows[s]
        assert r["status"] == "done" and r["chosen_pose"] in {"0", "1", "2"}
        assert float(r["residual_after_mm"]) < float(r["residual_before_mm"])
        mesh = read_mesh(out / r["output"], expected_vertices=anny_lite_template.n_vertices)
        assert mean_euclidean_distance(mesh.vertices, anny_lite_bodies["neutral"][int(s)]) < 0.03
        assert (out / r["png"]).stat().st_size > 10_000
    assert not list(out.rglob(".*tmp*"))
    # Re-run: the done subjects are skipped, the failed one is retried.
    res = CliRunner().invoke(cli, args + ["--no-png"])
    assert res.exit_code == 1 and "0 done, 1 failed, 2 skipped" in res.output, res.output


def test_cli_reports_bad_input_in_one_line(tmp_path, anny_lite_template):
    from bodydata.cli.main import cli

    man = tmp_path / "m.csv"
    man.write_text("id,path\nx,y.ply\n")
    tpl_dir = anny_lite_template.save(tmp_path / "tpl")
    res = CliRunner().invoke(cli, ["neutralize", "--manifest", str(man), "--template", str(tpl_dir), "--target", "anny",
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "Error:" in res.output and "Traceback" not in res.output
