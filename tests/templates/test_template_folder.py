"""Template folder format: save/load round trip, checksums, and one-line validation errors."""
import dataclasses
import json

import numpy as np
import pytest

from bodydata.errors import TemplateError
from bodydata.templates.landmarks import read_landmarks_csv, write_landmarks_csv
from bodydata.templates.template import Template, load_template


def copy(t: Template, **changes) -> Template:
    base = dict(
        vertices=t.vertices.copy(), faces=t.faces.copy(), part_labels=t.part_labels.copy(),
        part_names=list(t.part_names), landmarks=dict(t.landmarks), meta=json.loads(json.dumps(t.meta)),
    )  # fmt: skip
    base.update(changes)
    return dataclasses.replace(t, **base)


def one_line_error(t: Template, match: str):
    with pytest.raises(TemplateError) as err:
        t.validate()
    msg = str(err.value)
    assert "\n" not in msg and match in msg, msg
    return msg


def test_save_load_round_trip_is_exact(anny_lite_template, tmp_path):
    t = anny_lite_template
    t.save(tmp_path / "tpl")
    names = sorted(p.name for p in (tmp_path / "tpl").iterdir())
    assert names == ["landmarks.csv", "mesh.ply", "parts.csv", "template.json"]
    back = Template.load(tmp_path / "tpl")
    assert back.equals(t)
    assert back.vertices.dtype == np.float64 and back.faces.dtype == np.int64 and back.part_labels.dtype == np.int64
    doc = json.loads((tmp_path / "tpl" / "template.json").read_text())
    assert doc["units"] == "m" and doc["up_axis"] == "z" and doc["left_axis"] == "x" and len(doc["part_names"]) == 16
    # parts.csv: one row per vertex, ids and names agree with the labels
    rows = (tmp_path / "tpl" / "parts.csv").read_text().splitlines()
    assert rows[0] == "vertex_id,part_id,part_name" and len(rows) == t.n_vertices + 1
    for line in rows[1:50]:
        i, p, name = line.split(",")
        assert t.part_labels[int(i)] == int(p) and t.part_names[int(p)] == name


def test_load_template_by_name_is_cached_and_deterministic(anny_lite_template, tmp_path):
    a = load_template("anny-lite", cache_dir=tmp_path)
    cached = list(tmp_path.iterdir())
    assert len(cached) == 1 and (cached[0] / "template.json").is_file()
    b = load_template("anny-lite", cache_dir=tmp_path)  # from the cache
    assert a.equals(b) and a.equals(anny_lite_template)
    assert load_template(cached[0]).equals(a)


def test_changed_file_is_detected(anny_lite_template, tmp_path):
    folder = anny_lite_template.save(tmp_path / "tpl")
    lm = read_landmarks_csv(folder / "landmarks.csv")
    lm["nose_tip"] = 0
    write_landmarks_csv(folder / "landmarks.csv", lm)
    with pytest.raises(TemplateError, match="checksum differs"):
        Template.load(folder)


def test_missing_folder_and_file_errors(tmp_path, anny_lite_template):
    with pytest.raises(TemplateError, match="does not exist"):
        Template.load(tmp_path / "nope")
    folder = anny_lite_template.save(tmp_path / "tpl")
    (folder / "parts.csv").unlink()
    with pytest.raises(TemplateError, match="parts.csv: missing"):
        Template.load(folder)
    with pytest.raises(TemplateError, match="neither a template folder nor a built-in"):
        load_template("smpl-foo")
    with pytest.raises(TemplateError, match="built from user files"):
        load_template("scape")


def test_wrong_label_count(anny_lite_template):
    t = copy(anny_lite_template)
    t.part_labels = t.part_labels[:-1]
    one_line_error(t, f"part_labels has shape ({t.n_vertices - 1},), expected ({t.n_vertices},)")


def test_label_out_of_range(anny_lite_template):
    t = copy(anny_lite_template)
    t.part_labels[7] = 16
    t.part_labels[9] = -1
    one_line_error(t, "part label 16 at vertex 7 is outside 0..15 (2 such vertices)")


def test_float_labels_rejected(anny_lite_template):
    t = copy(anny_lite_template)
    t.part_labels = t.part_labels.astype(float)
    one_line_error(t, "non-integer dtype float64")


def test_landmark_id_out_of_range(anny_lite_template):
    t = copy(anny_lite_template)
    t.landmarks["navel"] = t.n_vertices
    one_line_error(t, f"landmark 'navel' has vertex id {t.n_vertices}, outside 0..{t.n_vertices - 1}")


def test_wrong_part_names_and_empty_part(anny_lite_template):
    t = copy(anny_lite_template, part_names=list(anny_lite_template.part_names)[:15])
    one_line_error(t, "expected 16 distinct part names, got 15")
    t = copy(anny_lite_template)
    t.part_labels[t.part_labels == 6] = 5  # hand_L swallowed by forearm_L
    one_line_error(t, "every part has vertices fails: empty: hand_L")


def test_swapped_sides_are_caught(anny_lite_template):
    t = copy(anny_lite_template)
    lab = t.part_labels.copy()
    for left, right in ((4, 7), (5, 8), (6, 9)):
        t.part_labels[lab == left] = right
        t.part_labels[lab == right] = left
    one_line_error(t, "_L parts on the subject's left (up x front) fails: upper_arm_L at")


def test_split_part_is_caught(anny_lite_template):
    t = copy(anny_lite_template)
    t.part_labels[t.part_labels == 9] = 6  # hand_R labelled hand_L: two regions, and hand_R empty
    msg = one_line_error(t, "fails")
    assert "hand_R" in msg or "hand_L" in msg


def test_units_and_axes(anny_lite_template):
    one_line_error(copy(anny_lite_template, units="mm"), "units must be 'm'")
    one_line_error(copy(anny_lite_template, front_axis="z"), "must be perpendicular")
    one_line_error(copy(anny_lite_template, up_axis="w"), "axis 'w' is not one of")


def test_parts_csv_inconsistent_with_template_json(anny_lite_template, tmp_path):
    folder = anny_lite_template.save(tmp_path / "tpl")
    lines = (folder / "parts.csv").read_text().splitlines()
    i, p, _ = lines[5].split(",")
    lines[5] = f"{i},{p},foot_R" if p != "15" else f"{i},{p},head_neck"
    (folder / "parts.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(TemplateError, match=r"parts.csv: line 6: part id \d+ is '\w+' in template.json, not"):
        Template.load(folder, verify_checksums=False)
    lines = lines[:-1]  # one vertex missing
    (folder / "parts.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(TemplateError, match="expected each of the 1229 vertex ids exactly once"):
        Template.load(folder, verify_checksums=False)
