"""`bodydata features` and `bodydata reconstruct` end to end on a few anny-lite bodies."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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


# ---------------------------------------------------------------------------------------------- what the project writes
# (issue #14 items 2 and 3: a manifest CSV as --meshes; a dataset's f.npy and damaged feature files for reconstruct)


def _write_bodies(folder, verts, faces):
    folder.mkdir(parents=True, exist_ok=True)
    return [write_mesh(folder / f"body{k}.ply", v, faces) for k, v in enumerate(verts)]


def test_features_reads_a_manifest_csv_and_keeps_only_done_rows(anny_lite_template_dir, anny_lite_template,
                                                                anny_lite_bodies, tmp_path):
    from bodydata.manifest.source_rows import ManifestRow
    from bodydata.manifest.source_rows import write_source_rows as write_manifest

    tpl = anny_lite_template
    paths = _write_bodies(tmp_path / "scan", anny_lite_bodies[0][:3], tpl.faces)
    rows = [ManifestRow(id=f"scan/{p.stem}", source="folder", kind="scan", path=f"scan/{p.name}",
                        topology="anny_notoes_collapse10pc", status=st)
            for p, st in zip(paths, ["ok", "failed", "done"])]
    write_manifest(tmp_path / "M.csv", rows)
    out = tmp_path / "f.npz"
    res = CliRunner().invoke(cli, ["features", "--template", str(anny_lite_template_dir), "--meshes",
                                   str(tmp_path / "M.csv"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    with np.load(out) as z:
        assert list(z["names"]) == ["body0", "body2"] and z["f"].shape == (2, tpl.n_vertices, 9)
    # a plain text list (relative paths, comments) is still a list
    (tmp_path / "list.txt").write_text("# two bodies\nscan/body1.ply\n\nscan/body0.ply\n")
    res = CliRunner().invoke(cli, ["features", "--template", str(anny_lite_template_dir), "--meshes",
                                   str(tmp_path / "list.txt"), "--out", str(tmp_path / "g.npz")])
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "g.npz") as z:
        assert list(z["names"]) == ["body1", "body0"]
    # a CSV that is not a manifest is a one-line error naming it
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    res = CliRunner().invoke(cli, ["features", "--template", str(anny_lite_template_dir), "--meshes",
                                   str(tmp_path / "other.csv"), "--out", str(tmp_path / "h.npz")])
    assert res.exit_code == 1 and "other.csv: not a bodydata manifest" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """A dataset built by `build_dataset` from 2 anny-lite identities x 1 pose (and their neutrals)."""
    from bodydata.dataset.build import build_dataset
    from bodydata.generator.synth import run_synth
    from bodydata.sources.scan import scan_source

    root = tmp_path_factory.mktemp("ds")
    synth = run_synth(root / "synth", 2, 1, seed=5, topology="notoes_collapse10pc", sheet=False, progress=False)
    scan_source("anny", synth.out_dir, root / "anny.csv", progress=False)
    return build_dataset([root / "anny.csv"], "anny-lite", root / "dataset", split="paper", n_test_neutral=1,
                         n_test_pose=1, seed=0, progress=False).out


def test_reconstruct_reads_a_datasets_f_npy(small_dataset, tmp_path):
    """The dataset's f.npy is unscaled: its rows reconstruct the meshes listed in pairs.csv."""
    import csv

    from bodydata.templates.template import load_template

    tpl = load_template("anny-lite")
    res = CliRunner().invoke(cli, ["reconstruct", "--template", "anny-lite", "--features",
                                   str(small_dataset / "f.npy"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    with open(small_dataset / "pairs.csv", newline="") as fh:
        pairs = list(csv.DictReader(fh))
    assert len(pairs) == len(np.load(small_dataset / "f.npy", mmap_mode="r")) >= 3
    written = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert len(written) == len(pairs) and written[0].startswith("00000_")
    # the same meshes through `bodydata features` (float64) and back: equal up to the float32 storage
    (tmp_path / "list.txt").write_text("".join(row["path"] + "\n" for row in pairs))
    res = CliRunner().invoke(cli, ["features", "--template", "anny-lite", "--meshes", str(tmp_path / "list.txt"),
                                   "--out", str(tmp_path / "f.npz")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["reconstruct", "--template", "anny-lite", "--features", str(tmp_path / "f.npz"),
                                   "--out", str(tmp_path / "r64")])
    assert res.exit_code == 0, res.output
    for k, row in enumerate(pairs):
        back = read_mesh(tmp_path / "r" / written[k]).vertices
        ref = read_mesh(tmp_path / "r64" / f"{Path(row['path']).stem}.ply").vertices
        src = read_mesh(row["path"]).vertices
        assert back.shape == (tpl.n_vertices, 3)
        assert np.abs(back - ref).max() < 1e-4, row["id"]
        # and the body itself, to the ACAP reconstruction's accuracy (a scaled f would be far off)
        err = np.linalg.norm((back - back.mean(0)) - (src - src.mean(0)), axis=1).mean()
        assert err < 1e-2, (row["id"], err)


def test_reconstruct_names_the_file_it_cannot_read(anny_lite_template_dir, small_dataset, tmp_path):
    good = small_dataset / "f.npy"
    lone = tmp_path / "lone" / "f.npy"
    lone.parent.mkdir()
    lone.write_bytes(good.read_bytes())
    np.savez(tmp_path / "ok.npz", f=np.zeros((1, 3, 9)))
    (tmp_path / "truncated.npz").write_bytes((tmp_path / "ok.npz").read_bytes()[:100])
    (tmp_path / "empty.npz").write_bytes(b"")
    cases = {
        tmp_path / "truncated.npz": "truncated or damaged",
        tmp_path / "empty.npz": "the file is empty",
        lone: "has no card.json",
        small_dataset / "g.npy": "features have 16 vertices, the template 1229",
    }
    for path, needle in cases.items():
        res = CliRunner().invoke(cli, ["reconstruct", "--template", str(anny_lite_template_dir), "--features",
                                       str(path), "--out", str(tmp_path / "r")])
        assert res.exit_code == 1, (path, res.output)
        assert isinstance(res.exception, SystemExit), (path, res.exception)
        line = res.output.strip()
        assert "\n" not in line and line.startswith(f"Error: {path}: ") and needle in line, line
