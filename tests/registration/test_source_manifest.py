"""The registration layer's source-manifest reader/writer and the conversion table's status words."""
from __future__ import annotations

import math
from pathlib import Path

import pytest


def test_read_source_records_resolves_paths_and_fills_columns(tmp_path):
    from bodydata.registration.source_manifest import done_mesh_paths, read_source_records
    from bodydata.manifest.source_rows import COLUMNS

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "list.csv").write_text(
        "path,status\na.ply,ok\nb.ply,done\nc.ply,failed\nd.ply,\n/abs/e.ply,ok\n,ok\n")
    recs = read_source_records(tmp_path / "sub" / "list.csv", complete=False)
    assert len(recs) == 6 and set(recs[0]) == set(COLUMNS) and recs[0]["id"] == ""
    assert recs[0]["path"] == str((tmp_path / "sub" / "a.ply").resolve())
    # usable rows: done, legacy ok and empty status; failed rows and rows without a path are not
    assert done_mesh_paths(tmp_path / "sub" / "list.csv") == [
        str((tmp_path / "sub" / n).resolve()) for n in ("a.ply", "b.ply", "d.ply")] + ["/abs/e.ply"]
    from bodydata.errors import BodydataError

    with pytest.raises(BodydataError, match=r"list\.csv: not a bodydata manifest \(missing columns: id"):
        read_source_records(tmp_path / "sub" / "list.csv")
    (tmp_path / "nopath.csv").write_text("id,status\nx,ok\n")
    with pytest.raises(BodydataError, match=r"nopath\.csv: not a bodydata manifest \(missing columns: path\)"):
        read_source_records(tmp_path / "nopath.csv", complete=False)


def test_source_records_round_trip(tmp_path):
    from bodydata.manifest.status import STATUS_DONE as SOURCE_DONE
    from bodydata.registration.source_manifest import read_source_records, write_source_records

    rec = {"id": "s/1", "source": "folder", "kind": "mesh", "path": str(tmp_path / "m.ply"), "n_vertices": "12.0",
           "status": SOURCE_DONE}
    write_source_records(tmp_path / "sources.csv", [rec])
    back = read_source_records(tmp_path / "sources.csv")
    assert len(back) == 1 and back[0]["id"] == "s/1" and back[0]["n_vertices"] == "12"
    assert back[0]["path"] == rec["path"] and back[0]["status"] == SOURCE_DONE and back[0]["n_faces"] == ""


def test_conversion_table_status_words(tmp_path):
    """conversion.csv rows are 'done' / 'failed'; a table written with the legacy 'ok' reads as done."""
    from bodydata.registration.convert import ConvertRow, converted_name, read_results, write_results

    write_results(tmp_path / "c.csv", [ConvertRow("a/1", "x.ply", status="done", p2m_mean_mm=1.23456, iterations=7),
                                       ConvertRow("a/2", "y.ply", reason="bad")])
    rows = read_results(tmp_path / "c.csv")
    assert [r.status for r in rows] == ["done", "failed"] and rows[0].p2m_mean_mm == pytest.approx(1.2346)
    assert rows[0].iterations == 7 and math.isnan(rows[1].p2m_mean_mm) and rows[1].reason == "bad"
    text = (tmp_path / "c.csv").read_text().replace(",done,", ",ok,")
    (tmp_path / "legacy.csv").write_text(text)
    assert [r.status for r in read_results(tmp_path / "legacy.csv")] == ["done", "failed"]
    assert read_results(tmp_path / "absent.csv") == []
    assert converted_name("faust/registrations tr_reg_000") == "faust_registrations_tr_reg_000.ply"
    assert Path(converted_name("///")).name == "mesh.ply"
