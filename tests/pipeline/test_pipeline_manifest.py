"""Stage manifests: CSV + journal round trip, crash tolerance (torn journal line), the folder lock, the schema."""
from __future__ import annotations

import csv
import json

import pytest

from bodydata.pipeline.manifest import (
    FIXED_COLUMNS,
    JOURNAL_NAME,
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    Row,
    done_rows,
    read_manifest_frame,
    read_rows,
)


def _row(key, status="done", **kw):
    return Row(item=key, status=status, input_hash="h" + key, input_stat="s" + key, outputs=(f"{key}.npy",), **kw)


def test_record_then_reload_from_journal_only(tmp_path):
    with Manifest.open(tmp_path, run_id="r1") as m:
        m.record(_row("a", columns={"area": 0.1 + 0.2, "n": 3, "ok": True}))
        m.record(_row("b", status="failed", reason="MeshError: b.ply:\n bad header"))
    # no CSV written: the journal alone restores the state
    assert not (tmp_path / MANIFEST_NAME).exists()
    rows = {r.item: r for r in read_rows(tmp_path)}
    assert rows["a"].status == "done" and rows["a"].columns == {"area": 0.1 + 0.2, "n": 3, "ok": True}
    assert rows["b"].status == "failed" and rows["b"].reason == "MeshError: b.ply: bad header"
    assert [r.item for r in done_rows(tmp_path)] == ["a"]


def test_csv_schema_order_and_exact_floats(tmp_path):
    with Manifest.open(tmp_path) as m:
        for k in ("c", "a", "b"):
            m.record(_row(k, columns={"z": 1.0 / 3.0, "a_col": k}))
        m.write_csv(order=["b", "c", "a"])
    with open(tmp_path / MANIFEST_NAME, newline="") as fh:
        recs = list(csv.DictReader(fh))
    assert list(recs[0].keys()) == [*FIXED_COLUMNS, "a_col", "z"]
    assert [r["item"] for r in recs] == ["b", "c", "a"]
    assert float(recs[0]["z"]) == 1.0 / 3.0  # repr round-trips exactly
    frame = read_manifest_frame(tmp_path)
    assert list(frame["item"]) == ["b", "c", "a"] and frame["z"].dtype.kind == "f"


def test_write_csv_drops_items_no_longer_listed(tmp_path):
    with Manifest.open(tmp_path) as m:
        m.record(_row("a"))
        m.record(_row("gone"))
        m.write_csv(order=["a"])
    with open(tmp_path / MANIFEST_NAME, newline="") as fh:
        assert [r["item"] for r in csv.DictReader(fh)] == ["a"]


def test_journal_wins_over_csv_and_torn_last_line_is_ignored(tmp_path):
    with Manifest.open(tmp_path) as m:
        m.record(_row("a", status="failed", reason="x"))
        m.write_csv()
        m.record(_row("a"))  # later success, only in the journal (as after a crash)
        m.record(_row("b"))
    with open(tmp_path / JOURNAL_NAME, "a") as fh:
        fh.write('{"event":"finished","item":"c","status":"do')  # crash mid-write
    rows = {r.item: r for r in read_rows(tmp_path)}
    assert rows["a"].status == "done"
    assert set(rows) == {"a", "b"}
    # the journal stays parseable for the next run: a new record goes on its own line
    with Manifest.open(tmp_path) as m:
        assert set(m.rows) == {"a", "b"}
        m.record(_row("d"))
    lines = (tmp_path / JOURNAL_NAME).read_text().splitlines()
    assert json.loads(lines[-1])["item"] == "d"
    assert {r.item for r in read_rows(tmp_path)} == {"a", "b", "d"}


def test_is_current_needs_done_same_stat_and_outputs(tmp_path):
    with Manifest.open(tmp_path) as m:
        m.record(_row("a"))
        m.record(_row("f", status="failed"))
        assert not m.is_current("a", "sa")  # output file missing
        (tmp_path / "a.npy").write_bytes(b"x")
        assert m.is_current("a", "sa")
        assert not m.is_current("a", "other-stat")
        (tmp_path / "f.npy").write_bytes(b"x")
        assert not m.is_current("f", "sf")  # failed rows are always redone
        assert not m.is_current("missing", "s")


def test_lock_refuses_a_second_run_on_the_same_folder(tmp_path):
    with Manifest.open(tmp_path):
        with pytest.raises(ManifestError, match="another bodydata run"):
            with Manifest.open(tmp_path):
                pass
    with Manifest.open(tmp_path):  # released
        pass


def test_bad_status_and_foreign_csv_are_errors(tmp_path):
    with pytest.raises(ManifestError, match="unknown status"):
        Row(item="a", status="ok")
    (tmp_path / MANIFEST_NAME).write_text("a,b\n1,2\n")
    with pytest.raises(ManifestError, match="not a stage manifest"):
        read_rows(tmp_path)
    with pytest.raises(ManifestError, match="no stage manifest"):
        done_rows(tmp_path / "nowhere")
