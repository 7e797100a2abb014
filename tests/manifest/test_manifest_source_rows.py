"""The source-row manifest: one reader/writer, one status vocabulary, one subject key (bodydata.manifest)."""
from __future__ import annotations

import ast
import csv
from pathlib import Path

import pytest

from bodydata.manifest.source_rows import (
    COLUMNS,
    ManifestFormatError,
    ManifestRow,
    read_source_rows,
    read_source_table,
    subject_key,
    subject_keys,
    write_source_rows,
)
from bodydata.manifest.status import is_done, normalise_status

ROOT = Path(__file__).resolve().parents[2]


def _row(rid: str, source: str, subject: str, kind: str = "generated", status: str = "done", path: str = "") -> ManifestRow:
    return ManifestRow(id=rid, source=source, kind=kind, path=path or f"meshes/{rid.replace('/', '_')}.ply",
                       topology="anny_notoes", subject=subject, pose="1", status=status)


def test_round_trip_status_paths_ints_and_extra_columns(tmp_path):
    rows = [_row("a/0", "a", "0", status="ok"), _row("a/1", "a", "1", status="failed")]
    rows[0].n_vertices, rows[0].n_faces = 12272, 24540
    rows[1].error = "meshes/a_1.ply: truncated"
    rows[1].extra = {"role": "pose"}
    out = write_source_rows(tmp_path / "m.csv", rows)
    with open(out, newline="") as fh:
        recs = list(csv.DictReader(fh))
    assert list(recs[0]) == [*COLUMNS, "role"]
    assert [r["status"] for r in recs] == ["done", "failed"]  # a legacy 'ok' is written as 'done'
    back = read_source_rows(out)
    assert [r.id for r in back] == ["a/0", "a/1"]
    assert back[0].n_vertices == 12272 and back[1].n_vertices is None
    assert Path(back[0].path) == (tmp_path / "meshes" / "a_0.ply").resolve()
    assert back[1].extra == {"role": "pose"} and back[0].extra == {"role": ""}
    assert back[1].error == "meshes/a_1.ply: truncated"
    table = read_source_table(out)
    assert list(table["status"]) == ["done", "failed"] and int(table["n_vertices"].iloc[0]) == 12272


def test_legacy_ok_rows_are_done(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text(",".join(COLUMNS) + "\n" + ",".join({"id": "x/0", "source": "x", "kind": "mesh", "path": "0.ply",
                                                          "status": "ok"}.get(c, "") for c in COLUMNS) + "\n")
    (row,) = read_source_rows(path)
    assert row.status == "done" and is_done("ok") and normalise_status("OK ") == "done" and not is_done("failed")


def test_bad_files_are_one_line_errors_naming_the_file(tmp_path):
    cases = {"": "empty file", "\n\n": "empty file", "a,b\n1,2\n": "missing columns: id, source, kind"}
    for k, (text, reason) in enumerate(cases.items()):
        path = tmp_path / f"bad{k}.csv"
        path.write_text(text)
        with pytest.raises(ManifestFormatError, match=reason) as err:
            read_source_rows(path)
        assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
    with pytest.raises(ManifestFormatError, match="does not exist"):
        read_source_rows(tmp_path / "nope.csv")
    with pytest.raises(ManifestFormatError, match="not a file"):
        read_source_rows(tmp_path)


def test_non_integer_vertex_count_names_line_and_column(tmp_path):
    rec = {"id": "x/0", "source": "x", "kind": "mesh", "path": "0.ply", "n_vertices": "many"}
    path = tmp_path / "m.csv"
    path.write_text(",".join(COLUMNS) + "\n" + ",".join(rec.get(c, "") for c in COLUMNS) + "\n")
    with pytest.raises(ManifestFormatError, match="line 2: column n_vertices is 'many'"):
        read_source_rows(path)


def test_subject_key_is_decided_over_all_rows_of_the_file():
    rows = [_row("a/0", "a", "0"), _row("b/0", "b", "0", status="failed")]
    assert subject_keys(rows) == ["a_0", "b_0"]
    assert subject_keys(rows[:1]) == ["0"]
    assert subject_key("a", "7", mixed=True) == "a_7" and subject_key("a", "7", mixed=False) == "7"


def _mixed_manifest(tmp_path: Path, second: list[ManifestRow]) -> Path:
    """Source ``a``: two poses and a ground-truth neutral of subject 1; then the ``second`` rows (another source)."""
    rows = [_row("a/p0", "a", "1"), _row("a/p1", "a", "1"), _row("a/n1", "a", "1", kind="neutral")] + second
    for r in rows:
        p = tmp_path / r.path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(r.id.encode())
    return write_source_rows(tmp_path / "sources.csv", rows)


def test_neutralize_stage_finds_the_truth_when_another_source_only_failed(tmp_path):
    # Defect (issue #13): the stage keyed ground-truth neutrals over the kind=neutral rows only ("1") while the
    # subjects were keyed over every row ("a_1"): the truth was silently not found.
    from bodydata.pipeline.stage import StageContext
    from bodydata.pipeline.stage_neutralize import make_stage

    man = _mixed_manifest(tmp_path, [_row("b/p0", "b", "1", status="failed")])
    items = list(make_stage(template="anny-lite", manifest=str(man)).items(StageContext(out_dir=tmp_path / "n")))
    assert [it.key for it in items] == ["a_1"]
    assert items[0].params["truth"] == str((tmp_path / "meshes" / "a_n1.ply").resolve())
    assert items[0].params["labels"] == ["1", "1"]


def test_build_dataset_stage_finds_the_constructed_neutral_when_another_source_has_only_truth(tmp_path):
    # Defect (issue #13): build-dataset keyed subjects over the rows left after dropping kind=neutral ("1") while
    # neutralize keyed them over every row ("a_1"): the constructed neutral was silently left out.
    from bodydata.pipeline.manifest import Manifest, Row
    from bodydata.pipeline.stage_dataset import _combined_manifest

    man = _mixed_manifest(tmp_path, [_row("b/n0", "b", "0", kind="neutral")])
    ndir = tmp_path / "neutralize"
    (ndir / "neutral").mkdir(parents=True)
    (ndir / "neutral" / "a_1.ply").write_bytes(b"ply")
    with Manifest.open(ndir) as m:
        m.record(Row(item="a_1", status="done", outputs=("neutral/a_1.ply",)))
        m.write_csv()
    _combined_manifest(str(man), str(ndir), tmp_path / "inputs.csv")
    rows = read_source_rows(tmp_path / "inputs.csv")
    neutral = [r for r in rows if r.extra["role"] == "neutral"]
    assert [(r.id, r.source, r.subject, r.kind) for r in neutral] == [("a-neutral-1", "a", "1", "constructed_neutral")]
    assert sorted(r.id for r in rows if r.extra["role"] == "pose") == ["a/p0", "a/p1"]


def test_manifest_package_sits_below_every_other_layer():
    for f in (ROOT / "bodydata" / "manifest").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bodydata."):
                assert node.module.split(".")[1] in ("errors", "fsutil", "manifest"), f"{f.name} imports {node.module}"
