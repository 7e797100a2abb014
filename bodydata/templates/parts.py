"""The 16 anatomical body parts (the paper's Fig. 1 / SPRING segmentation): names, colours, part graph, island clean-up.

Part ids are fixed (0..15) and shared by every template:

==  ===========  ==  ===========  ==  ===========  ==  ===========
 0  head_neck     4  upper_arm_L  10  thigh_L      13  thigh_R
 1  chest         5  forearm_L    11  calf_L       14  calf_R
 2  abdomen       6  hand_L       12  foot_L       15  foot_R
 3  hips          7  upper_arm_R
                  8  forearm_R
                  9  hand_R
==  ===========  ==  ===========  ==  ===========  ==  ===========

``_L``/``_R`` are the subject's own left/right. The anatomical part graph is a tree of 15 edges
(:data:`ANATOMICAL_EDGES`): the torso chain head_neck-chest-abdomen-hips, each arm hanging from
the chest (upper arm, forearm, hand) and each leg from the hips (thigh, calf, foot).
Colours (:data:`PART_COLORS`) put the subject's left limbs in warm and right limbs in cool hues so
a left/right swap is visible at a glance in renders.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components as _cc

from bodydata.errors import TemplateError
from bodydata.fsutil import atomic_write_text
from bodydata.mesh.topology import edges as mesh_edges

PART_NAMES: tuple[str, ...] = (
    "head_neck",
    "chest",
    "abdomen",
    "hips",
    "upper_arm_L",
    "forearm_L",
    "hand_L",
    "upper_arm_R",
    "forearm_R",
    "hand_R",
    "thigh_L",
    "calf_L",
    "foot_L",
    "thigh_R",
    "calf_R",
    "foot_R",
)
N_PARTS = len(PART_NAMES)
PART_INDEX: dict[str, int] = {name: i for i, name in enumerate(PART_NAMES)}

TORSO: tuple[str, ...] = ("head_neck", "chest", "abdomen", "hips")
#: Each limb as a chain from its root (attached to the torso) to its tip.
LIMBS: dict[str, tuple[str, str, str]] = {
    "arm_L": ("upper_arm_L", "forearm_L", "hand_L"),
    "arm_R": ("upper_arm_R", "forearm_R", "hand_R"),
    "leg_L": ("thigh_L", "calf_L", "foot_L"),
    "leg_R": ("thigh_R", "calf_R", "foot_R"),
}
#: The torso part each limb hangs from in the anatomical tree.
LIMB_ATTACHMENT: dict[str, str] = {"arm_L": "chest", "arm_R": "chest", "leg_L": "hips", "leg_R": "hips"}
#: Torso parts a limb root may also touch on a real mesh (an armpit reaching the abdomen, a thigh the abdomen).
LIMB_ROOT_MAY_TOUCH: dict[str, tuple[str, ...]] = {
    "arm_L": ("chest", "abdomen"),
    "arm_R": ("chest", "abdomen"),
    "leg_L": ("abdomen", "hips"),
    "leg_R": ("abdomen", "hips"),
}

ANATOMICAL_EDGES: tuple[tuple[str, str], ...] = (
    ("head_neck", "chest"),
    ("chest", "abdomen"),
    ("abdomen", "hips"),
    *((LIMB_ATTACHMENT[limb], chain[0]) for limb, chain in LIMBS.items()),
    *((chain[k], chain[k + 1]) for chain in LIMBS.values() for k in range(2)),
)

#: (16, 3) float64 RGB in [0, 1], row = part id. Torso greys/greens, left limbs warm, right limbs cool.
PART_COLORS: np.ndarray = np.array(
    [
        [0.93, 0.86, 0.55],  # head_neck: sand
        [0.55, 0.78, 0.55],  # chest: light green
        [0.30, 0.62, 0.45],  # abdomen: green
        [0.55, 0.55, 0.55],  # hips: grey
        [1.00, 0.62, 0.62],  # upper_arm_L: light red
        [0.88, 0.20, 0.18],  # forearm_L: red
        [0.50, 0.05, 0.05],  # hand_L: dark red
        [0.62, 0.78, 1.00],  # upper_arm_R: light blue
        [0.20, 0.40, 0.92],  # forearm_R: blue
        [0.05, 0.12, 0.50],  # hand_R: navy
        [1.00, 0.82, 0.45],  # thigh_L: light orange
        [0.95, 0.55, 0.10],  # calf_L: orange
        [0.58, 0.30, 0.02],  # foot_L: brown
        [0.78, 0.65, 0.98],  # thigh_R: lavender
        [0.58, 0.32, 0.85],  # calf_R: purple
        [0.32, 0.10, 0.52],  # foot_R: dark purple
    ],
    dtype=np.float64,
)


def part_colors(labels: np.ndarray) -> np.ndarray:
    """(n, 3) float64 RGB of each vertex from its part label (n,) int."""
    return PART_COLORS[np.asarray(labels, dtype=np.int64)]


def part_graph(faces: np.ndarray, labels: np.ndarray, part_names: tuple[str, ...] | list[str] = PART_NAMES) -> nx.Graph:
    """Part adjacency graph: nodes are part ids 0..len(part_names)-1, an edge joins two parts sharing a mesh edge.

    faces : (m, 3) int64; labels : (n,) int64 part id of each vertex.
    Node attributes: ``name`` and ``n_vertices``; edge attribute ``n_edges`` (how many mesh edges cross
    between the two parts). Parts without vertices are still nodes (isolated).
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_parts = len(part_names)
    graph = nx.Graph()
    counts = np.bincount(labels, minlength=n_parts)
    for i, name in enumerate(part_names):
        graph.add_node(i, name=name, n_vertices=int(counts[i]))
    e = mesh_edges(faces)
    a, b = labels[e[:, 0]], labels[e[:, 1]]
    cross = a != b
    pairs = np.stack([np.minimum(a[cross], b[cross]), np.maximum(a[cross], b[cross])], axis=1)
    if len(pairs):
        uniq, n = np.unique(pairs, axis=0, return_counts=True)
        for (i, j), c in zip(uniq.tolist(), n.tolist()):
            graph.add_edge(i, j, n_edges=int(c))
    return graph


def part_components(faces: np.ndarray, labels: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected regions of equal label: ``(count, comp)`` with comp (n,) int64 region id of each vertex.

    Two vertices are in one region when a path of mesh edges joins them without leaving their part.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    e = mesh_edges(faces)
    e = e[labels[e[:, 0]] == labels[e[:, 1]]]
    adj = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    count, comp = _cc(adj, directed=False)
    return int(count), comp.astype(np.int64)


def regions_per_part(faces: np.ndarray, labels: np.ndarray, n_parts: int = N_PARTS) -> np.ndarray:
    """(n_parts,) int64: how many connected regions each part has (1 for a clean segmentation, 0 if empty)."""
    labels = np.asarray(labels, dtype=np.int64)
    count, comp = part_components(faces, labels)
    comp_label = np.zeros(count, dtype=np.int64)
    comp_label[comp] = labels
    return np.bincount(comp_label, minlength=n_parts)


def clean_part_islands(faces: np.ndarray, labels: np.ndarray, max_rounds: int = 20) -> np.ndarray:
    """Make every part one connected region: smaller regions join the part they share most edges with.

    faces : (m, 3) int64; labels : (n,) int64. Returns new labels (n,) int64 (the input is not changed).
    Each part keeps its largest region; every other region ("island") is relabelled, all at once per
    round, to the part of the neighbour it shares the most mesh edges with (ties: lower part id).
    Rounds repeat until no island is left (islands surrounded by islands need more than one).
    """
    labels = np.asarray(labels, dtype=np.int64).copy()
    e = mesh_edges(faces)
    for _ in range(max_rounds):
        count, comp = part_components(faces, labels)
        comp_label = np.zeros(count, dtype=np.int64)
        comp_label[comp] = labels
        size = np.bincount(comp, minlength=count)
        # The largest region of each part: sort by (label, -size) and take the first of each label.
        order = np.lexsort((-size, comp_label))
        first = np.ones(count, dtype=bool)
        first[1:] = comp_label[order[1:]] != comp_label[order[:-1]]
        keep = np.zeros(count, dtype=bool)
        keep[order[first]] = True
        if keep.all():
            return labels
        ca, cb = comp[e[:, 0]], comp[e[:, 1]]
        cross = ca != cb
        # Votes (island region, neighbour label) from both directions of every crossing edge.
        votes = np.concatenate(
            [np.stack([ca[cross], labels[e[cross, 1]]], 1), np.stack([cb[cross], labels[e[cross, 0]]], 1)]
        )
        votes = votes[~keep[votes[:, 0]]]
        pairs, n = np.unique(votes, axis=0, return_counts=True)
        order = np.lexsort((pairs[:, 1], -n, pairs[:, 0]))  # per region: most votes, then lower label
        pairs = pairs[order]
        best = np.ones(len(pairs), dtype=bool)
        best[1:] = pairs[1:, 0] != pairs[:-1, 0]
        new_comp_label = comp_label.copy()
        new_comp_label[pairs[best, 0]] = pairs[best, 1]
        labels = new_comp_label[comp]
    raise RuntimeError(f"part islands remain after {max_rounds} clean-up rounds")


def part_graph_problems(graph: nx.Graph, part_names: tuple[str, ...] | list[str] = PART_NAMES) -> list[str]:
    """Anatomical implausibilities of a part graph over :data:`PART_NAMES`, as one-line strings (empty = plausible).

    Required: every edge of :data:`ANATOMICAL_EDGES`, and a connected graph. Forbidden: any edge between
    two different limbs (so left and right only meet through the torso), between non-consecutive parts of
    one limb (hand-upper arm), between the head and anything but the chest, and between a limb's
    forearm/hand/calf/foot and the torso. A limb root may touch the torso parts of
    :data:`LIMB_ROOT_MAY_TOUCH`.
    """
    names = list(part_names)
    if names != list(PART_NAMES):
        return [f"part names {names} are not the standard 16 {list(PART_NAMES)}"]
    problems: list[str] = []
    present = {frozenset((PART_NAMES[i], PART_NAMES[j])) for i, j in graph.edges}
    for a, b in ANATOMICAL_EDGES:
        if frozenset((a, b)) not in present:
            problems.append(f"{a} and {b} should be adjacent but are not")
    allowed = {frozenset(edge) for edge in ANATOMICAL_EDGES}
    for limb, chain in LIMBS.items():
        allowed |= {frozenset((chain[0], torso)) for torso in LIMB_ROOT_MAY_TOUCH[limb]}
    for edge in sorted(present, key=lambda s: sorted(PART_INDEX[p] for p in s)):
        if edge not in allowed:
            a, b = sorted(edge, key=PART_INDEX.get)
            problems.append(f"{a} and {b} are adjacent, which is anatomically implausible")
    if graph.number_of_nodes() and not nx.is_connected(graph):
        problems.append(f"part graph is not connected ({nx.number_connected_components(graph)} components)")
    return problems


# ------------------------------------------------------------------------------------- parts CSV
#: Columns of a parts CSV: one row per vertex.
PARTS_CSV_COLUMNS: tuple[str, ...] = ("vertex_id", "part_id", "part_name")


def write_parts_csv(path: str | os.PathLike, labels: np.ndarray, part_names: Sequence[str]) -> None:
    """Write ``vertex_id,part_id,part_name`` rows for labels (n,) int (ids into ``part_names``), atomically."""
    import pandas as pd

    labels = np.asarray(labels, dtype=np.int64)
    table = pd.DataFrame({
        "vertex_id": np.arange(len(labels)),
        "part_id": labels,
        "part_name": np.asarray(part_names, dtype=object)[labels],
    })
    atomic_write_text(path, table.to_csv(index=False, lineterminator="\n"))


def read_parts_csv(path: str | os.PathLike, n_vertices: int, part_names: Sequence[str] | None = None) -> np.ndarray:
    """(n,) int64 part labels from a parts CSV that lists every vertex id 0..n-1 exactly once.

    With ``part_names`` (a template folder) the header must be exactly ``vertex_id,part_id,part_name`` and
    each row's name must be the name of its id; without (a bare mesh's parts file) the columns
    ``vertex_id,part_id`` suffice. Problems raise one-line :class:`TemplateError`s naming the file (and line).
    """
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={"vertex_id": "int64", "part_id": "int64", "part_name": str}, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        raise TemplateError(f"{path}: cannot parse ({' '.join(str(exc).split())})") from None
    if part_names is not None and list(df.columns) != list(PARTS_CSV_COLUMNS):
        raise TemplateError(f"{path}: the first line must be the header '{','.join(PARTS_CSV_COLUMNS)}'")
    if not set(PARTS_CSV_COLUMNS[:2]) <= set(df.columns):
        raise TemplateError(f"{path}: needs the columns {','.join(PARTS_CSV_COLUMNS[:2])}")
    vid, pid = df["vertex_id"].to_numpy(), df["part_id"].to_numpy()
    if len(vid) != n_vertices or not np.array_equal(np.sort(vid), np.arange(n_vertices)):
        raise TemplateError(f"{path}: has {len(vid)} rows; expected each of the {n_vertices} vertex ids exactly once")
    top = max(len(part_names), 1) if part_names is not None else np.iinfo(np.int64).max
    bad = np.flatnonzero((pid < 0) | (pid >= top))
    if len(bad):
        allowed = f"0..{len(part_names) - 1}" if part_names is not None else "0 and up"
        raise TemplateError(f"{path}: line {int(bad[0]) + 2}: part id {int(pid[bad[0]])} is outside {allowed}")
    if part_names is not None:
        names = df["part_name"].str.strip().to_numpy(dtype=object)
        mism = np.flatnonzero(np.asarray(part_names, dtype=object)[pid] != names)
        if len(mism):
            i = int(mism[0])
            raise TemplateError(
                f"{path}: line {i + 2}: part id {int(pid[i])} is {part_names[pid[i]]!r} in template.json, not {names[i]!r}"
            )
    labels = np.empty(n_vertices, dtype=np.int64)
    labels[vid] = pid
    return labels
