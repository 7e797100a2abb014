"""bodydata virtual-scan: scans, truth files and the source-row CSV; failed meshes are rows; the files read back."""
from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from bodydata.cli.main import cli as main
from bodydata.manifest.source_rows import (
    ManifestRow,
    read_source_rows,
    write_source_rows,
)
from bodydata.mesh.io import read_points, write_mesh


def _meshes(tmp_path, tpl):
    folder = tmp_path / "meshes"
    folder.mkdir()
    write_mesh(folder / "body_2.ply", tpl.vertices, tpl.faces)
    write_mesh(folder / "body_10.ply", tpl.vertices * 1.05, tpl.faces)
    (folder / "broken.ply").write_text("ply\nformat ascii 1.0\nelement vertex 3\n")
    return folder


def test_cli_scans_a_folder_writes_truth_and_lists_failures(tmp_path, anny_lite_template):
    tpl = anny_lite_template
    folder = _meshes(tmp_path, tpl)
    out = tmp_path / "scans"
    args = ["virtual-scan", "--meshes", str(folder), "--out", str(out), "--points", "5000", "--faces", "noisy",
            "--landmarks", "carry", "--quiet"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output            # one mesh failed
    rows = read_source_rows(out / "scans.csv")
    assert [r.id for r in rows] == ["virtual_scan/body_2", "virtual_scan/body_10", "virtual_scan/broken"]
    assert [r.status for r in rows] == ["done", "done", "failed"]
    assert "broken.ply" in rows[2].error and rows[2].path == ""
    first = rows[0]
    assert first.kind == "scan" and first.topology == "own" and first.gt_kind == "virtual_scan"
    scan = read_points(first.path)
    truth = np.load(first.gt_path)
    assert len(scan.vertices) == first.n_vertices == len(truth["face"]) and 4000 < first.n_vertices < 6000
    assert len(scan.faces) == first.n_faces > 0
    body = truth["face"] >= 0
    on_face = np.einsum("ij,ijk->ik", truth["barycentric"][body], tpl.vertices[tpl.faces[truth["face"][body]]])
    np.testing.assert_allclose(on_face, truth["surface"][body], atol=1e-12)
    err = np.linalg.norm(scan.vertices - truth["surface"], axis=1) / truth["noise_sigma"]
    assert np.sqrt((err ** 2).mean()) < 1.2           # 1 mm noise along the ray, the rms is one sigma
    assert str(truth["source_path"]).endswith("body_2.ply")
    # the topology's shipped landmarks (anny-lite: 1,229 vertices), carried to the scan points nearest them
    from bodydata.templates.landmarks import read_landmarks_csv

    marks = read_landmarks_csv(first.landmarks_path)
    assert len(marks) >= 15 and int(first.extra["n_landmarks"]) == len(marks)
    src = np.array([tpl.landmarks[k] for k in marks])
    gap = np.linalg.norm(truth["surface"][list(marks.values())] - tpl.vertices[src], axis=1)
    assert gap.max() <= 0.02
    again = tmp_path / "again"
    CliRunner().invoke(main, args[:4] + [str(again)] + args[5:])
    assert (again / "scans" / "body_2.ply").read_bytes() == (out / "scans" / "body_2.ply").read_bytes()


def test_cli_reads_a_manifest_and_keeps_its_rows_identity_and_up_axis(tmp_path, anny_lite_template):
    tpl = anny_lite_template
    rot = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])    # z-up -> y-up
    write_mesh(tmp_path / "a.ply", tpl.vertices @ rot.T, tpl.faces)
    manifest = write_source_rows(tmp_path / "in.csv", [
        ManifestRow(id="faust/a", source="faust", kind="registration", path=str(tmp_path / "a.ply"),
                    topology="own", subject="3", pose="4", up_axis="+y", status="done"),
        ManifestRow(id="faust/b", source="faust", kind="registration", path=str(tmp_path / "b.ply"),
                    topology="own", status="failed", error="b.ply: file does not exist")])
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["virtual-scan", "--meshes", str(manifest), "--out", str(out), "--points", "3000",
                                    "--quiet"])
    assert res.exit_code == 1, res.output
    a, b = read_source_rows(out / "scans.csv")
    assert (a.subject, a.pose, a.up_axis, a.source, a.status) == ("3", "4", "+y", "faust", "done")
    assert b.status == "failed" and "file does not exist" in b.error
    truth = np.load(a.gt_path)
    floor = truth["face"] < 0
    assert floor.any()
    np.testing.assert_allclose(truth["surface"][floor][:, 1], (tpl.vertices @ rot.T)[:, 1].min(), atol=1e-12)
    assert len(read_points(a.path).faces) == 0


def test_point_cloud_scans_are_a_folder_source(tmp_path, anny_lite_template):
    folder = _meshes(tmp_path, anny_lite_template)
    (folder / "broken.ply").unlink()
    out = tmp_path / "scans"
    res = CliRunner().invoke(main, ["virtual-scan", "--meshes", str(folder), "--out", str(out), "--points", "3000",
                                    "--quiet"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["sources", "scan", "--source", "folder", "--root", str(out / "scans"), "--out",
                                    str(tmp_path / "sources.csv")])
    assert res.exit_code == 0, res.output
    rows = read_source_rows(tmp_path / "sources.csv")
    assert [r.status for r in rows] == ["done", "done"]
    assert {r.topology for r in rows} == {"own"} and {r.n_faces for r in rows} == {0}


def test_cli_cannot_start_on_a_folder_without_meshes(tmp_path):
    res = CliRunner().invoke(main, ["virtual-scan", "--meshes", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no mesh files" in res.output
