"""The body method of the neutral stage: rows, a subject without a usable pose, a non-anny template."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("anny")


@pytest.fixture(scope="module")
def body_neutralizer():
    from bodydata.neutral.neutralize import NeutralConfig, Neutralizer
    from bodydata.templates.template import load_template

    tpl = load_template("anny-lite")
    return Neutralizer(tpl, tpl.vertices, NeutralConfig(method="body"))


def test_body_method_rows_and_failed_subject(body_neutralizer, anny_lite_bodies, tmp_path):
    from bodydata.mesh import write_mesh
    from bodydata.neutral.neutralize import NeutralizeError, neutralize_subject_files

    faces = anny_lite_bodies["faces"]
    poses = []
    for k in range(2):
        path = tmp_path / f"p{k}.ply"
        write_mesh(path, anny_lite_bodies["poses"][0, k], faces)
        poses.append((f"p{k}", path))
    truth = anny_lite_bodies["neutral"][0]
    row = neutralize_subject_files(body_neutralizer, "s0", poses, tmp_path, png=False, truth=truth)
    assert row["method"] == "body" and row["averaged_poses"] == "p0;p1"
    assert len(row["part_strain_pct"].split(";")) == 16 and row["fit_med_mm"].startswith("p0:")
    # the neutral from two poses of a known anny body is close to its true neutral
    assert float(row["med_to_truth_mm"]) < 15.0
    from bodydata.mesh.alignment import mean_euclidean_distance

    before = min(mean_euclidean_distance(p, truth) for p in anny_lite_bodies["poses"][0, :2]) * 1000
    assert float(row["med_to_truth_mm"]) < 0.5 * before
    bad = tmp_path / "bad.ply"
    bad.write_text("not a mesh")
    with pytest.raises(NeutralizeError, match="no usable pose"):
        neutralize_subject_files(body_neutralizer, "s1", [("x", bad)], tmp_path, png=False)
    with pytest.raises(NeutralizeError, match="no usable pose"):
        body_neutralizer.subject(np.full((2, 1229, 3), np.nan))


def test_body_method_needs_anny_template():
    from bodydata.neutral.neutralize import NeutralConfig, NeutralizeError, Neutralizer
    from bodydata.templates.template import Template, load_template

    lite = load_template("anny-lite")
    other = Template("other", lite.vertices, lite.faces, lite.part_labels, list(lite.part_names), lite.landmarks,
                     up_axis=lite.up_axis, front_axis=lite.front_axis)
    with pytest.raises(NeutralizeError, match="anny-topology template"):
        Neutralizer(other, other.vertices, NeutralConfig(method="body"))


def test_body_method_subject_without_usable_pose_is_failed_row(anny_lite_bodies, tmp_path):
    from bodydata.mesh import write_mesh
    from bodydata.neutral.neutralize import NeutralConfig, run_neutralize
    from bodydata.templates.template import load_template

    tpl = load_template("anny-lite")
    good = tmp_path / "good.ply"
    write_mesh(good, anny_lite_bodies["poses"][1, 0], anny_lite_bodies["faces"])
    bad = tmp_path / "bad.ply"
    bad.write_text("ply\nnot a mesh\n")
    man = tmp_path / "m.csv"
    man.write_text(f"subject,path\nok,{good}\nbroken,{bad}\n")
    summary = run_neutralize(man, tpl, tpl.vertices, tmp_path / "out", NeutralConfig(method="body"), png=False,
                             progress=False)
    rows = {r["subject"]: r for r in summary.rows}
    assert summary.n_done == 1 and summary.n_failed == 1
    assert rows["broken"]["status"] == "failed" and "no usable pose" in rows["broken"]["reason"]
    assert rows["ok"]["method"] == "body" and rows["ok"]["averaged_poses"]
