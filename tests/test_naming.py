"""Natural order of names: digit runs compare as numbers, mixed names never compare an int with a str."""
from __future__ import annotations

from bodydata.naming import natural_key


def test_digit_runs_sort_as_numbers():
    names = ["p10", "p2", "p1", "n1b", "n1", "10a", "a", "2", "anny00010/walk_001", "anny00002/walk_010"]
    got = sorted(names, key=natural_key)
    assert got == ["2", "10a", "a", "anny00002/walk_010", "anny00010/walk_001", "n1", "n1b", "p1", "p2", "p10"]


def test_keys_alternate_text_and_numbers():
    assert natural_key("tr_reg_012.ply") == ["tr_reg_", 12, ".ply"]
    assert natural_key("12") == ["", 12, ""]
    assert natural_key("abc") == ["abc"]
