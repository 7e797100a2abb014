"""Part names, part graph, island clean-up and the anatomical plausibility rules, on small synthetic meshes."""
import networkx as nx
import numpy as np
import pytest

from bodydata.templates.parts import (
    ANATOMICAL_EDGES,
    N_PARTS,
    PART_COLORS,
    PART_INDEX,
    PART_NAMES,
    clean_part_islands,
    part_graph,
    part_graph_problems,
    regions_per_part,
)


def grid_mesh(nx_: int, ny: int):
    """A flat (nx_ x ny)-vertex grid triangulated into 2 triangles per cell; vertex id = j * nx_ + i."""
    xs, ys = np.meshgrid(np.arange(nx_, dtype=float), np.arange(ny, dtype=float))
    v = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1)
    faces = []
    for j in range(ny - 1):
        for i in range(nx_ - 1):
            a, b, c, d = j * nx_ + i, j * nx_ + i + 1, (j + 1) * nx_ + i, (j + 1) * nx_ + i + 1
            faces += [[a, b, d], [a, d, c]]
    return v, np.array(faces, dtype=np.int64)


def loop_regions(faces, labels):
    """Reference: number of connected same-label regions per part by breadth-first search (plain loops)."""
    nbrs = {i: set() for i in range(len(labels))}
    for f in faces.tolist():
        for a in f:
            for b in f:
                if a != b:
                    nbrs[a].add(b)
    seen, counts = set(), [0] * N_PARTS
    for s in range(len(labels)):
        if s in seen:
            continue
        counts[labels[s]] += 1
        stack = [s]
        seen.add(s)
        while stack:
            u = stack.pop()
            for w in nbrs[u]:
                if w not in seen and labels[w] == labels[u]:
                    seen.add(w)
                    stack.append(w)
    return counts


def test_names_and_colours_are_fixed():
    assert len(PART_NAMES) == 16 == len(set(PART_NAMES))
    assert PART_NAMES[0] == "head_neck" and PART_INDEX["foot_R"] == 15
    assert PART_COLORS.shape == (16, 3) and (PART_COLORS >= 0).all() and (PART_COLORS <= 1).all()
    assert len({tuple(c) for c in PART_COLORS.round(3)}) == 16
    tree = nx.Graph([(PART_INDEX[a], PART_INDEX[b]) for a, b in ANATOMICAL_EDGES])
    assert tree.number_of_nodes() == 16 and nx.is_tree(tree)


def test_part_graph_counts_crossing_edges():
    v, f = grid_mesh(4, 3)  # 12 vertices; left column part 0, the rest part 5
    labels = np.full(12, 5)
    labels[[0, 4, 8]] = 0
    g = part_graph(f, labels)
    assert set(g.nodes) == set(range(16))
    assert list(g.edges) == [(0, 5)]
    # crossing edges, counted by a loop over faces: (0,1),(4,5),(8,9) horizontal + diagonals (0,5),(4,9)
    crossing = set()
    for tri in f.tolist():
        for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
            if labels[a] != labels[b]:
                crossing.add((min(a, b), max(a, b)))
    assert g.edges[0, 5]["n_edges"] == len(crossing) == 5
    assert g.nodes[0]["n_vertices"] == 3 and g.nodes[5]["n_vertices"] == 9 and g.nodes[7]["n_vertices"] == 0


def test_islands_are_merged_into_the_part_around_them():
    v, f = grid_mesh(7, 7)
    labels = np.zeros(49, dtype=np.int64)
    labels[np.arange(49) % 7 >= 4] = 1  # right columns: part 1
    labels[3 * 7 + 1] = 1  # a one-vertex island of part 1 inside part 0
    labels[5 * 7 + 5] = 2  # an island of part 2 (its only region: kept)
    labels[[0 * 7 + 6, 1 * 7 + 6]] = 0  # a two-vertex island of part 0 inside part 1
    assert loop_regions(f, labels)[:3] == [2, 2, 1]
    cleaned = clean_part_islands(f, labels)
    assert loop_regions(f, cleaned)[:3] == [1, 1, 1]
    assert regions_per_part(f, cleaned)[:3].tolist() == [1, 1, 1]
    assert cleaned[3 * 7 + 1] == 0 and cleaned[6] == 1 and cleaned[13] == 1 and cleaned[5 * 7 + 5] == 2
    changed = np.flatnonzero(cleaned != labels)
    assert sorted(changed.tolist()) == [6, 13, 22]
    assert np.array_equal(clean_part_islands(f, cleaned), cleaned)  # idempotent


def anatomical_graph():
    g = nx.Graph()
    g.add_nodes_from(range(16))
    g.add_edges_from((PART_INDEX[a], PART_INDEX[b]) for a, b in ANATOMICAL_EDGES)
    return g


def test_the_anatomical_tree_is_plausible():
    assert part_graph_problems(anatomical_graph()) == []


@pytest.mark.parametrize(
    "a, b, fragment",
    [
        ("hand_L", "thigh_L", "hand_L and thigh_L are adjacent"),
        ("upper_arm_L", "upper_arm_R", "upper_arm_L and upper_arm_R are adjacent"),
        ("thigh_L", "thigh_R", "thigh_L and thigh_R are adjacent"),
        ("hand_R", "upper_arm_R", "upper_arm_R and hand_R are adjacent"),
        ("head_neck", "upper_arm_L", "head_neck and upper_arm_L are adjacent"),
        ("forearm_L", "abdomen", "abdomen and forearm_L are adjacent"),
    ],
)
def test_implausible_adjacency_is_reported(a, b, fragment):
    g = anatomical_graph()
    g.add_edge(PART_INDEX[a], PART_INDEX[b])
    problems = part_graph_problems(g)
    assert len(problems) == 1 and fragment in problems[0]


def test_tolerated_limb_root_contact_and_missing_edges():
    g = anatomical_graph()
    g.add_edge(PART_INDEX["upper_arm_L"], PART_INDEX["abdomen"])  # an armpit reaching the abdomen is fine
    assert part_graph_problems(g) == []
    g.remove_edge(PART_INDEX["forearm_R"], PART_INDEX["hand_R"])
    problems = part_graph_problems(g)
    assert any("forearm_R and hand_R should be adjacent" in p for p in problems)
    assert any("not connected" in p for p in problems)
