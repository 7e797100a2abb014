"""Manifests of the shared real data (FAUST, FAUST_r, SCAPE, DHNN paper meshes) made by `bodydata sources scan`."""
from __future__ import annotations

from collections import Counter

import pytest
from click.testing import CliRunner

from bodydata.cli.main import cli
from bodydata.manifest.source_rows import read_source_table as read_manifest


def _scan(shared_data, tmp_path, source, rel, name):
    root = shared_data / rel
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    out = tmp_path / f"{name}.csv"
    res = CliRunner().invoke(cli, ["sources", "scan", "--source", source, "--root", str(root), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    table = read_manifest(out)
    assert table["id"].is_unique
    assert (table["status"] == "done").all(), table.loc[table["status"] != "done", "error"].tolist()
    assert table["sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    return table


def test_faust_registrations(shared_data, tmp_path):
    t = _scan(shared_data, tmp_path, "faust", "faust", "faust")
    assert len(t) == 80
    assert (t["topology"] == "smpl_6890").all() and (t["n_vertices"] == 6890).all() and (t["n_faces"] == 13776).all()
    assert Counter(t["subject"]) == {str(s): 10 for s in range(8)}
    assert sorted(set(t["pose"])) == [str(p) for p in range(10)]
    row = t[t["id"].str.endswith("tr_reg_057")].iloc[0]
    assert (row["subject"], row["pose"], row["up_axis"], row["units"]) == ("5", "7", "+y", "m")


def test_faust_remeshed(shared_data, tmp_path):
    t = _scan(shared_data, tmp_path, "remeshed", "faust_r", "faust_r")
    assert len(t) == 80 and (t["topology"] == "own").all()
    assert (t["gt_kind"] == "vts").all() and t["gt_path"].str.endswith(".vts").all()
    assert not t["gt_path"].str.endswith(".sym.vts").any()
    assert Counter(t["subject"]) == {str(s): 10 for s in range(8)}
    assert t["n_vertices"].between(4900, 5100).all()


def test_scape_original(shared_data, tmp_path):
    t = _scan(shared_data, tmp_path, "scape", "scape/original_12500", "scape")
    assert len(t) == 3 and sorted(t["pose"], key=int) == ["0", "2", "55"]
    assert (t["topology"] == "scape_12500").all() and (t["up_axis"] == "+x").all() and (t["subject"] == "0").all()


def test_scape_simplified(shared_data, tmp_path):
    t = _scan(shared_data, tmp_path, "scape", "scape/simplified_2161", "scape_simplified")
    assert len(t) == 71 and (t["topology"] == "scape_simplified_2161").all()
    assert sorted(t["pose"], key=int) == [str(k) for k in range(1, 72)]


def test_dhnn_paper_meshes(shared_data, tmp_path):
    t = _scan(shared_data, tmp_path, "folder", "dhnn/template_connectivity", "dhnn")
    assert len(t) == 8 and (t["topology"] == "scape_12500").all() and (t["n_faces"] == 24995).all()
    d = _scan(shared_data, tmp_path, "dfaust", "dhnn/smpl_topology", "dfaust")
    assert sorted(zip(d["sequence"], d["frame"])) == [("chicken_wings", "199"), ("jumping_jacks", "39")]
    assert (d["topology"] == "smpl_6890").all()
