"""The Stage abstraction: input hashes, the one-item executor (failed rows vs retried exceptions), atomic outputs."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import pipeline_test_stages as T  # noqa: E402

from bodydata.pipeline.stage import (  # noqa: E402
    Item,
    ItemContext,
    Stage,
    StageError,
    content_digest,
    execute_item,
    stat_digest,
)


def test_content_hash_follows_bytes_options_and_params_not_paths(tmp_path):
    (a,) = T.write_noisy_spheres(tmp_path / "a", 1, subdivisions=1)
    stage = T.make_area_stage(folder=str(tmp_path / "a"))
    item = Item("x", inputs=(str(a),))
    h = content_digest(stage, item)
    moved = tmp_path / "elsewhere.ply"
    moved.write_bytes(a.read_bytes())
    assert content_digest(stage, Item("x", inputs=(str(moved),))) == h  # moving data keeps results valid
    assert content_digest(stage, Item("x", inputs=(str(a),), params={"k": 1})) != h
    other = T.make_area_stage(folder=str(tmp_path / "a"), flag=True)
    assert content_digest(other, item) != h
    data = bytearray(a.read_bytes())
    data[-1] ^= 1
    a.write_bytes(bytes(data))
    assert content_digest(stage, item) != h


def test_stat_digest_changes_with_mtime_and_missing_files(tmp_path):
    (a,) = T.write_noisy_spheres(tmp_path, 1, subdivisions=1)
    stage = T.make_area_stage(folder=str(tmp_path))
    item = Item("x", inputs=(str(a),))
    s0 = stat_digest(stage, item)
    st = os.stat(a)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert stat_digest(stage, item) != s0
    a.unlink()
    assert stat_digest(stage, item) != s0  # no exception: a missing file just matches nothing


def test_execute_item_done_row_with_outputs_and_columns(tmp_path):
    (a,) = T.write_noisy_spheres(tmp_path / "in", 1, subdivisions=2)
    stage = T.make_area_stage(folder=str(tmp_path / "in"))
    row = execute_item(stage, Item(a.stem, inputs=(str(a),)), tmp_path / "out")
    assert row["status"] == "done" and row["reason"] == ""
    assert row["outputs"] == [f"{a.stem}.npy"]
    areas = np.load(tmp_path / "out" / f"{a.stem}.npy")
    assert np.isclose(areas.sum(), T.loop_area(a), rtol=1e-12)
    assert np.isclose(row["columns"]["area"], T.loop_area(a), rtol=1e-12)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp files left


def test_bodydata_error_gives_failed_row_other_errors_propagate(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_text("ply\nformat ascii 1.0\nelement vertex 3\nend_header\n0 0\n")
    stage = T.make_area_stage(folder=str(tmp_path))
    row = execute_item(stage, Item("bad", inputs=(str(bad),)), tmp_path / "out")
    assert row["status"] == "failed" and row["reason"].startswith("MeshError: ") and "\n" not in row["reason"]
    assert row["outputs"] == []
    missing = execute_item(stage, Item("gone", inputs=(str(tmp_path / "gone.ply"),)), tmp_path / "out")
    assert missing["status"] == "failed" and "cannot read input" in missing["reason"]

    flaky = T.make_number_stage(count=1, flaky_items=[0], marker_dir=str(tmp_path))
    with pytest.raises(OSError, match="transient"):
        execute_item(flaky, Item("n000", params={"i": 0}), tmp_path / "out")
    assert execute_item(flaky, Item("n000", params={"i": 0}), tmp_path / "out")["status"] == "done"


def test_output_paths_must_stay_inside_the_stage_folder(tmp_path):
    ctx = ItemContext(tmp_path, {}, Item("a"))
    for bad in ("../x.npy", "/abs.npy", "a;b.npy"):
        with pytest.raises(StageError):
            with ctx.output(bad):
                pass
    with pytest.raises(RuntimeError):
        with ctx.output("sub/y.npy") as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("crash while writing")
    assert not (tmp_path / "sub" / "y.npy").exists() and ctx.outputs == []


def test_result_columns_are_checked(tmp_path):
    def listing(ctx):
        return [Item("a")]

    for bad, why in (({"status": 1}, "reserved"), ({"arr": np.zeros(3)}, "non-scalar"), ([1, 2], "mapping")):
        stage = Stage(name="bad", process=lambda item, ctx, bad=bad: bad, items=listing)
        row = execute_item(stage, Item("a"), tmp_path)  # a stage bug is a failed row with the reason, loud in the summary
        assert row["status"] == "failed" and row["reason"].startswith("StageError: ") and why in row["reason"]
    ok = Stage(name="ok", process=lambda item, ctx: {"x": np.float32(0.5), "n": np.int64(2), "nan": float("nan")},
               items=listing)
    row = execute_item(ok, Item("a"), tmp_path)
    assert row["columns"] == {"x": 0.5, "n": 2, "nan": "nan"} and type(row["columns"]["n"]) is int


def test_item_keys_are_one_line():
    with pytest.raises(StageError):
        Item("")
    with pytest.raises(StageError):
        Item("a\nb")
