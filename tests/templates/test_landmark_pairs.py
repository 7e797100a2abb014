"""Landmark pair files (``template_vertex source_vertex`` lines, the paper's bodyrep_corres.txt format)."""
from __future__ import annotations

import pytest


def test_pairs_become_shared_names_on_both_sides(tmp_path):
    from bodydata.templates.landmarks import read_landmark_pairs

    lines = ["template smpl", "# a comment", ""] + [f"{100 + k} {7 * k}" for k in range(12)] + ["5,6  # comma too"]
    (tmp_path / "p.txt").write_text("\n".join(lines) + "\n")
    tpl, src = read_landmark_pairs(tmp_path / "p.txt", n_template=200, n_source=100)
    assert list(tpl) == list(src) == [f"pair_{k:02d}" for k in range(13)]
    for k in range(12):  # line by line, as written
        assert tpl[f"pair_{k:02d}"] == 100 + k and src[f"pair_{k:02d}"] == 7 * k
    assert (tpl["pair_12"], src["pair_12"]) == (5, 6)


@pytest.mark.parametrize("text, reason", [
    ("", "no landmark pairs"),
    ("1 2\n3 x\n", "line 2 is not two integer vertex ids"),
    ("1 2\n3 4 5\n", "line 2 is not two integer vertex ids"),
    ("1 2\n300 4\n", "outside 0..199"),
    ("1 2\n3 -4\n", "outside 0..99"),
])
def test_bad_pair_files_give_one_line_errors(tmp_path, text, reason):
    from bodydata.errors import TemplateError
    from bodydata.templates.landmarks import read_landmark_pairs

    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(TemplateError) as err:
        read_landmark_pairs(path, n_template=200, n_source=100)
    msg = str(err.value)
    assert reason in msg and str(path) in msg and "\n" not in msg


def test_missing_pair_file(tmp_path):
    from bodydata.errors import TemplateError
    from bodydata.templates.landmarks import read_landmark_pairs

    with pytest.raises(TemplateError, match="landmark pair file is missing"):
        read_landmark_pairs(tmp_path / "nope.txt")


def test_pairs_reach_only_meshes_of_their_topology(tmp_path):
    from bodydata.errors import TemplateError
    from bodydata.templates.landmarks import add_pair_landmarks, load_landmark_pairs

    (tmp_path / "p.txt").write_text("10 6000\n11 6889\n")
    tpl, src = load_landmark_pairs(tmp_path / "p.txt", "smpl_6890", n_template=12500)
    assert tpl == {"pair_0": 10, "pair_1": 11} and src == {"pair_0": 6000, "pair_1": 6889}
    own = {"nose_tip": 332}
    assert add_pair_landmarks(own, 6890, src, "smpl_6890") == {"nose_tip": 332, **src}
    assert add_pair_landmarks(None, 6890, src, "smpl_6890") == src
    assert add_pair_landmarks(own, 12500, src, "smpl_6890") is own       # another topology: untouched
    with pytest.raises(TemplateError, match="unknown pair topology 'smpl'"):
        load_landmark_pairs(tmp_path / "p.txt", "smpl")
    with pytest.raises(TemplateError, match=r"outside 0\.\.1228"):
        load_landmark_pairs(tmp_path / "p.txt", "anny_notoes_collapse10pc")
