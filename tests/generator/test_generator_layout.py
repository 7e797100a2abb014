"""The generator's file layout: names and their parsers agree, and the adapter's reading matches the writing."""
from __future__ import annotations

from bodydata.generator import layout


def test_names_round_trip():
    for i in (0, 7, 12345):
        assert layout.identity_index(layout.identity_name(i)) == i
    assert layout.identity_name(7) == "anny00007"
    assert layout.identity_index("subject7") is None
    stem = layout.pose_stem("walking_left_forward", 12)
    assert stem == "walking_left_forward_012" and layout.pose_index(stem) == 12
    assert layout.pose_index("nopose") is None


def test_paths():
    assert layout.mesh_path("anny00001", "sit_003") == "meshes/anny00001/sit_003.ply"
    assert layout.neutral_path("anny00001") == "neutral/anny00001.ply"
    assert layout.truth_path("anny00001", "sit_003") == "truth/anny00001/sit_003.json"
    assert layout.map_path("subdiv") == "subdiv/map.npz"
