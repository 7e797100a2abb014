"""The one parts CSV reader/writer: round trip, the bare-mesh form (no names), and one-line errors naming file and line."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.errors import TemplateError
from bodydata.templates.parts import PART_NAMES, read_parts_csv, write_parts_csv


def test_round_trip_with_names(tmp_path):
    labels = np.random.default_rng(0).integers(0, 16, 40)
    path = tmp_path / "parts.csv"
    write_parts_csv(path, labels, PART_NAMES)
    lines = path.read_text().splitlines()
    assert lines[0] == "vertex_id,part_id,part_name" and len(lines) == 41
    assert lines[3] == f"2,{labels[2]},{PART_NAMES[labels[2]]}"
    assert np.array_equal(read_parts_csv(path, 40, list(PART_NAMES)), labels)


def test_bare_mesh_form_needs_ids_only_in_any_row_order(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("part_id,vertex_id\n3,2\n0,0\n7,1\n")
    assert read_parts_csv(path, 3).tolist() == [0, 7, 3]


@pytest.mark.parametrize(
    "text, names, message",
    [
        ("vertex_id,part\n0,1\n", None, r"p.csv: needs the columns vertex_id,part_id"),
        ("vertex_id,part_id\n0,1\n", None, r"p.csv: has 1 rows; expected each of the 3 vertex ids exactly once"),
        ("vertex_id,part_id\n0,1\n0,1\n2,1\n", None, r"exactly once"),
        ("vertex_id,part_id\n0,1\n1,-4\n2,1\n", None, r"p.csv: line 3: part id -4 is outside 0 and up"),
        ("vertex_id,part_id\n0,1\n1,2\n2,1\n", ["a", "b"], r"p.csv: the first line must be the header"),
        ("vertex_id,part_id,part_name\n0,1,b\n1,2,b\n2,1,b\n", ["a", "b"], r"p.csv: line 3: part id 2 is outside 0..1"),
        ("vertex_id,part_id,part_name\n0,1,b\n1,0,b\n2,1,b\n", ["a", "b"], r"line 3: part id 0 is 'a' in template.json, not 'b'"),
        ("vertex_id,part_id\n0,x\n", None, r"p.csv: cannot parse"),
    ],
)
def test_bad_files_raise_one_line_errors(tmp_path, text, names, message):
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(TemplateError, match=message) as err:
        read_parts_csv(path, 3, names)
    assert "\n" not in str(err.value)
