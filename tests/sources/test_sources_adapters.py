"""Source adapters on small synthetic folders: parsing of names, failed rows, wrong-folder errors, CSV output."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bodydata.cli.main import cli
from bodydata.mesh import write_mesh
from bodydata.manifest.source_rows import COLUMNS
from bodydata.manifest.source_rows import read_source_table as read_manifest
from bodydata.sources.base import SourceError, adapter_names
from bodydata.sources.dfaust import parse_sequence_path
from bodydata.sources.remeshed import read_vts
from bodydata.errors import MeshError
from bodydata.sources.scan import scan_source

FACES = np.array([[0, 1, 2], [0, 2, 3], [1, 3, 2]], dtype=np.int64)


def _mesh(path: Path, n: int, faces: np.ndarray = FACES, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    write_mesh(path, rng.normal(size=(n, 3)), faces)
    return path


def _corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 6890\nproperty float x\n"
                     b"property float y\nproperty float z\nend_header\n" + b"\0" * 100)
    return path


def _by_id(rows):
    return {r.id: r for r in rows}


def test_registry_lists_every_adapter():
    assert set(adapter_names()) >= {"faust", "scape", "dfaust", "dyna", "remeshed", "folder", "anny"}


def test_faust_parsing_and_failed_rows(tmp_path):
    reg = tmp_path / "training" / "registrations"
    _mesh(reg / "tr_reg_000.ply", 6890)
    _mesh(reg / "tr_reg_017.ply", 6890)
    _corrupt(reg / "tr_reg_023.ply")
    _mesh(reg / "tr_reg_031.ply", 6000)
    _mesh(tmp_path / "training" / "scans" / "tr_scan_017.ply", 100)
    _mesh(tmp_path / "test" / "scans" / "test_scan_003.ply", 120)
    _mesh(reg / "notes.ply", 10)  # not a FAUST name: ignored
    out = tmp_path / "m.csv"
    res = scan_source("faust", tmp_path, out, progress=False)
    rows = _by_id(res.rows)
    assert len(rows) == 6
    r = rows["faust/training/registrations/tr_reg_017"]
    assert (r.subject, r.pose, r.topology, r.kind, r.status, r.n_vertices) == ("1", "7", "smpl_6890", "registration", "done", 6890)
    assert r.up_axis == "+y" and r.units == "m" and len(r.sha256) == 64
    bad = rows["faust/training/registrations/tr_reg_023"]
    assert bad.status == "failed" and "truncated" in bad.error and "tr_reg_023.ply" in bad.error
    wrong = rows["faust/training/registrations/tr_reg_031"]
    assert wrong.status == "failed" and "6000 vertices" in wrong.error and "6890" in wrong.error
    assert (wrong.subject, wrong.pose) == ("3", "1")
    scan = rows["faust/training/scans/tr_scan_017"]
    assert (scan.kind, scan.topology, scan.subject, scan.pose, scan.status) == ("scan", "own", "1", "7", "done")
    test = rows["faust/test/scans/test_scan_003"]
    assert (test.subject, test.pose, test.status) == ("", "", "done")
    assert res.n_ok == 4 and res.n_failed == 2
    # CSV: header = COLUMNS, failed rows keep their reason, round trip through read_manifest
    with open(out, newline="") as fh:
        header = next(csv.reader(fh))
    assert header == COLUMNS
    table = read_manifest(out)
    assert len(table) == 6 and set(table["status"]) == {"done", "failed"}
    assert table.loc[table["id"] == "faust/training/registrations/tr_reg_017", "subject"].item() == "1"
    assert table.loc[table["id"] == "faust/test/scans/test_scan_003", "subject"].item() == ""
    assert not list(tmp_path.glob(".m.csv.tmp-*"))


@pytest.mark.parametrize("source,needle", [("faust", "tr_reg_XXX.ply"), ("scape", "meshNNN"), ("dfaust", "<sequence>"),
                                           ("remeshed", "mesh files"), ("folder", "mesh files"), ("anny", "synth.json")])
def test_wrong_folder_says_what_was_expected(tmp_path, source, needle):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(SourceError) as err:
        scan_source(source, tmp_path, None, progress=False)
    assert needle in str(err.value) and str(tmp_path) in str(err.value)


def test_missing_root_is_an_error(tmp_path):
    with pytest.raises(SourceError, match="not a folder"):
        scan_source("faust", tmp_path / "nope", None, progress=False)


def test_scape_original_and_simplified(tmp_path):
    orig = tmp_path / "orig"
    _mesh(orig / "mesh000.off", 12500)
    _mesh(orig / "mesh055.ply", 12500)
    _mesh(orig / "mesh070.off", 12000)
    rows = _by_id(scan_source("scape", orig, None, progress=False).rows)
    assert rows["scape/mesh055"].pose == "55" and rows["scape/mesh055"].topology == "scape_12500"
    assert rows["scape/mesh000"].up_axis == "+x" and rows["scape/mesh000"].subject == "0"
    assert rows["scape/mesh070"].status == "failed" and "12500" in rows["scape/mesh070"].error

    simp = tmp_path / "simp"
    for k in (1, 2, 10):
        _mesh(simp / f"{k}.obj", 50, seed=k)
    _mesh(simp / "11.obj", 50, faces=FACES[::-1].copy())
    _mesh(simp / "12.obj", 49)
    res = scan_source("scape", simp, None, progress=False)
    assert [r.pose for r in res.rows] == ["1", "2", "10", "11", "12"]  # natural order
    rows = _by_id(res.rows)
    assert rows["scape/10"].topology == "scape_simplified_50" and rows["scape/10"].status == "done"
    assert rows["scape/11"].status == "failed" and "faces differ" in rows["scape/11"].error
    assert rows["scape/12"].status == "failed" and "49 vertices" in rows["scape/12"].error


@pytest.mark.parametrize("rel,expected", [
    ("50002/chicken_wings/00199.obj", ("50002", "chicken_wings", "199")),
    ("50002_chicken_wings_00199.ply", ("50002", "chicken_wings", "199")),
    ("50004/one_leg_jump_12.obj", ("50004", "one_leg_jump", "12")),
    ("chicken_wings_199.obj", ("", "chicken_wings", "199")),
    ("jumping_jacks_39.obj", ("", "jumping_jacks", "39")),
    ("tr_reg_000.ply", None),
    ("0.obj", None),
])
def test_dfaust_path_parsing(rel, expected):
    root = Path("/data")
    assert parse_sequence_path(root, root / rel) == expected


def test_dfaust_and_dyna_scan(tmp_path):
    _mesh(tmp_path / "50002" / "punching" / "0003.obj", 6890)
    _mesh(tmp_path / "50002" / "punching" / "0004.obj", 100)
    for source in ("dfaust", "dyna"):
        rows = _by_id(scan_source(source, tmp_path, None, progress=False).rows)
        ok = rows[f"{source}/50002/punching/0003"]
        assert (ok.subject, ok.sequence, ok.frame, ok.topology, ok.status, ok.source) == (
            "50002", "punching", "3", "smpl_6890", "done", source)
        assert rows[f"{source}/50002/punching/0004"].status == "failed"


def test_read_vts(tmp_path):
    p = tmp_path / "a.vts"
    p.write_text("1\n5\n3\n")
    assert read_vts(p).tolist() == [0, 4, 2]
    assert read_vts(p, n_vertices=5).tolist() == [0, 4, 2]
    with pytest.raises(MeshError, match="refers to vertex 5"):
        read_vts(p, n_vertices=4)
    p.write_text("0\n2\n")
    with pytest.raises(MeshError, match="1-based"):
        read_vts(p)
    p.write_text("1\n2.5\n")
    with pytest.raises(MeshError, match="not an integer"):
        read_vts(p)
    with pytest.raises(MeshError, match="does not exist"):
        read_vts(tmp_path / "none.vts")


def test_remeshed_with_vts(tmp_path):
    _mesh(tmp_path / "off" / "tr_reg_012.off", 10)
    _mesh(tmp_path / "off" / "tr_reg_013.off", 11)
    _mesh(tmp_path / "off" / "tr_reg_014.off", 10)
    _mesh(tmp_path / "off" / "tr_reg_015.off", 10)
    _mesh(tmp_path / "off" / "mesh004.off", 10)
    (tmp_path / "corres").mkdir()
    (tmp_path / "corres" / "tr_reg_012.vts").write_text("1\n10\n4\n")
    (tmp_path / "corres" / "tr_reg_013.vts").write_text("11\n2\n3\n")
    (tmp_path / "corres" / "tr_reg_014.vts").write_text("11\n2\n3\n")  # vertex 11 of a 10-vertex mesh
    (tmp_path / "corres" / "tr_reg_015.vts").write_text("1\n2\n")      # shorter than the others
    rows = _by_id(scan_source("remeshed", tmp_path, None, progress=False).rows)
    r = rows["remeshed/off/tr_reg_012"]
    assert (r.subject, r.pose, r.topology, r.gt_kind, r.status, r.units) == ("1", "2", "own", "vts", "done", "normalized")
    assert r.gt_path.endswith("corres/tr_reg_012.vts")
    assert rows["remeshed/off/tr_reg_013"].status == "done"
    assert rows["remeshed/off/tr_reg_014"].status == "failed" and "vertex 11" in rows["remeshed/off/tr_reg_014"].error
    assert rows["remeshed/off/tr_reg_015"].status == "failed" and "lines" in rows["remeshed/off/tr_reg_015"].error
    s = rows["remeshed/off/mesh004"]
    assert (s.subject, s.pose, s.gt_path, s.status) == ("0", "4", "", "done")


def test_folder_with_landmark_csv(tmp_path):
    _mesh(tmp_path / "a.obj", 10)
    _mesh(tmp_path / "sub" / "b.ply", 4)
    (tmp_path / "landmarks.csv").write_text("name,vertex_id\nnose_tip,3\nchin,7\n")
    rows = _by_id(scan_source("folder", tmp_path, None, progress=False).rows)
    assert rows["folder/a"].status == "done" and rows["folder/a"].landmarks_path.endswith("landmarks.csv")
    assert rows["folder/a"].topology == "own" and rows["folder/a"].up_axis == ""
    assert rows["folder/sub/b"].status == "failed" and "vertex_id 7" in rows["folder/sub/b"].error

    per_mesh = tmp_path / "per_mesh.csv"
    per_mesh.write_text("mesh,name,x,y,z\na,nose_tip,0,1,2\n")
    rows = _by_id(scan_source("folder", tmp_path, None, progress=False, landmarks=per_mesh, up_axis="+z").rows)
    assert rows["folder/a"].status == "done" and rows["folder/a"].up_axis == "+z"
    assert rows["folder/sub/b"].status == "failed" and "no rows for this mesh" in rows["folder/sub/b"].error

    bad = tmp_path / "bad.csv"
    bad.write_text("label,idx\nnose,1\n")
    with pytest.raises(SourceError, match="name,vertex_id"):
        scan_source("folder", tmp_path, None, progress=False, landmarks=bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("name,vertex_id\nchin,1\nchin,2\n")
    with pytest.raises(SourceError, match="repeat"):
        scan_source("folder", tmp_path, None, progress=False, landmarks=dup)
    with pytest.raises(SourceError, match="does not exist"):
        scan_source("folder", tmp_path, None, progress=False, landmarks=tmp_path / "missing.csv")


def test_folder_named_topology_gets_packaged_landmarks(tmp_path):
    _mesh(tmp_path / "x.obj", 6890)
    row = scan_source("folder", tmp_path, None, progress=False).rows[0]
    assert row.topology == "smpl_6890" and row.status == "done"
    packaged = Path(__file__).resolve().parents[2] / "bodydata" / "templates" / "data" / "landmarks_smpl_6890.csv"
    assert row.landmarks_path == (str(packaged) if packaged.is_file() else "")


def _fake_synth(root: Path, n: int = 1229) -> Path:
    """A folder with the layout of `bodydata synth anny` (written here, without running anny)."""
    (root).mkdir(parents=True, exist_ok=True)
    meta = {"layout_version": 1, "units": "m", "up_axis": "+z",
            "topologies": {"notoes_collapse10pc": {"anny_topology": "notoes_collapse10pc", "vertices": n, "faces": 3, "folder": "."}}}
    (root / "synth.json").write_text(json.dumps(meta))
    for ident, stems in (("anny00000", ["standing_a_000", "twisting_001"]), ("anny00003", ["walk_000"])):
        _mesh(root / "neutral" / f"{ident}.ply", n)
        for stem in stems:
            _mesh(root / "meshes" / ident / f"{stem}.ply", n)
            truth = {"identity": ident, "pose_index": int(stem.rsplit("_", 1)[1]), "pose_name": stem.rsplit("_", 1)[0]}
            (root / "truth" / ident).mkdir(parents=True, exist_ok=True)
            (root / "truth" / ident / f"{stem}.json").write_text(json.dumps(truth))
    return root


def test_anny_generated_folder(tmp_path):
    root = _fake_synth(tmp_path / "synth")
    (root / "truth" / "anny00003" / "walk_000.json").unlink()
    (root / "truth" / "anny00000" / "twisting_001.json").write_text(json.dumps({"identity": "anny00009", "pose_index": 1}))
    _mesh(root / "meshes" / "anny00003" / "odd_002.ply", 500)
    res = scan_source("anny", root, None, progress=False)
    rows = _by_id(res.rows)
    assert len(rows) == 6
    r = rows["anny/meshes/anny00000/standing_a_000"]
    assert (r.kind, r.subject, r.pose, r.topology, r.up_axis, r.units, r.gt_kind, r.status) == (
        "generated", "0", "0", "anny_notoes_collapse10pc", "+z", "m", "anny", "done")
    assert r.gt_path == str(root.resolve() / "truth" / "anny00000" / "standing_a_000.json")
    n = rows["anny/neutral/anny00003"]
    assert (n.kind, n.subject, n.pose, n.gt_path, n.status) == ("neutral", "3", "", "", "done")
    assert rows["anny/meshes/anny00003/walk_000"].status == "failed"
    assert "ground-truth file" in rows["anny/meshes/anny00003/walk_000"].error
    assert "anny00009" in rows["anny/meshes/anny00000/twisting_001"].error
    odd = rows["anny/meshes/anny00003/odd_002"]
    assert odd.status == "failed" and "500 vertices" in odd.error and "1229" in odd.error

    (root / "synth.json").write_text("{not json")
    with pytest.raises(SourceError, match="synth.json"):
        scan_source("anny", root, None, progress=False)


def test_anny_adapter_reads_the_generator_output(tmp_path):
    """Coordination check with `bodydata synth anny`: its real output scans with every row ok."""
    anny_synth = pytest.importorskip("bodydata.generator.synth")
    out = tmp_path / "synth"
    anny_synth.run_synth(out, identities=1, poses=1, topology="notoes_collapse10pc", sheet=False, progress=False)
    res = scan_source("anny", out, None, progress=False)
    kinds = sorted(r.kind for r in res.rows)
    assert kinds == ["generated", "neutral"]
    assert all(r.status == "done" for r in res.rows), [r.error for r in res.rows]
    gen = next(r for r in res.rows if r.kind == "generated")
    assert gen.topology == "anny_notoes_collapse10pc" and gen.n_vertices == 1229 and gen.subject == "0"
    assert Path(gen.gt_path).is_file()


def test_read_manifest_resolves_relative_paths(tmp_path):
    _mesh(tmp_path / "data" / "tr_reg_005.ply", 6890)
    out = tmp_path / "m.csv"
    scan_source("faust", tmp_path / "data", out, progress=False)
    text = out.read_text().replace(str((tmp_path / "data").resolve()) + "/", "data/")
    out.write_text(text)
    table = read_manifest(out)
    assert Path(table["path"].item()) == (tmp_path / "data" / "tr_reg_005.ply").resolve()
    assert table["n_vertices"].item() == 6890
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(Exception, match="not a bodydata manifest"):
        read_manifest(tmp_path / "x.csv")


def test_cli_list_and_scan(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["sources", "list"])
    assert res.exit_code == 0 and "faust" in res.output and "anny" in res.output and "layout:" in res.output
    _mesh(tmp_path / "tr_reg_000.ply", 6890)
    _corrupt(tmp_path / "tr_reg_001.ply")
    out = tmp_path / "manifests" / "faust.csv"
    res = runner.invoke(cli, ["sources", "scan", "--source", "faust", "--root", str(tmp_path), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "2 rows, 1 ok, 1 failed" in res.output and out.is_file()
    res = runner.invoke(cli, ["sources", "scan", "--source", "faust", "--root", str(tmp_path), "--out", str(out), "--quiet", "--strict"])
    assert res.exit_code == 1
    res = runner.invoke(cli, ["sources", "scan", "--source", "scape", "--root", str(tmp_path), "--out", str(tmp_path / "s.csv")])
    assert res.exit_code != 0 and "meshNNN" in res.output and not (tmp_path / "s.csv").exists()
    res = runner.invoke(cli, ["sources", "scan", "--source", "nosuch", "--root", str(tmp_path), "--out", str(tmp_path / "s.csv")])
    assert res.exit_code != 0 and "unknown source" in res.output


def test_folder_subject_from_a_path_pattern(tmp_path):
    # Issue #14 item 8: a folder source had no way to set a subject, so a dataset build failed every row.
    for rel in ("s1/pose_00.ply", "s1/pose_01.ply", "s2/pose_00.ply", "loose.ply"):
        _mesh(tmp_path / "data" / rel, 4)
    out = tmp_path / "m.csv"
    res = CliRunner().invoke(cli, ["sources", "scan", "--source", "folder", "--root", str(tmp_path / "data"),
                                   "--out", str(out), "--quiet",
                                   "--subject-regex", r"(?P<subject>s\d+)/pose_(?P<pose>\d+)"])
    assert res.exit_code == 0, res.output
    rows = {r["id"]: r for r in csv.DictReader(open(out, newline=""))}
    assert [(rows[f"folder/{k}"]["subject"], rows[f"folder/{k}"]["pose"]) for k in ("s1/pose_00", "s1/pose_01", "s2/pose_00")] \
        == [("s1", "00"), ("s1", "01"), ("s2", "00")]
    assert rows["folder/loose"]["status"] == "failed" and "does not match the subject pattern" in rows["folder/loose"]["error"]
    bad = CliRunner().invoke(cli, ["sources", "scan", "--source", "folder", "--root", str(tmp_path / "data"),
                                   "--out", str(tmp_path / "x.csv"), "--subject-regex", "(?P<who>.*)"])
    assert bad.exit_code == 2 and "needs a named group (?P<subject>...)" in bad.output and not (tmp_path / "x.csv").exists()
