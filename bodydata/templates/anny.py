"""The ``anny`` and ``anny-lite`` templates: anny's rest mesh with 16 parts from its skinning weights, and landmarks.

Geometry: ``anny.Anny(topology=...)`` with the default rig (``'anny'``), evaluated once with the
default phenotype (every phenotype parameter 0.5) and no pose; the template takes the model's
``rest_vertices`` (the bind pose of the rig: standing, arms down at about 45 degrees), z-up,
facing -y, in metres. The subject's left is +x (``up x front = z x -y``): the rig's ``.L`` bones sit
at +x, and :func:`check_left_is_plus_x` verifies it on every build.

Topologies: ``anny`` = ``notoes`` (12,272 vertices, 24,540 triangles, one closed manifold),
``anny-lite`` = ``notoes_collapse10pc`` (1,229 vertices, 2,454 triangles) for fast tests.

Part labels: every bone maps to one of the 16 parts (table below; ``.L``/``.R`` bones go to the
``_L``/``_R`` part), each vertex sums its skinning weights per part and takes the part with the
largest sum, then :func:`bodydata.templates.parts.clean_part_islands` merges stray regions so each
part is one connected region.

====================================================================== ============
anny bones (default rig)                                               part
====================================================================== ============
neck01, neck02, neck03, head, eye.*, jaw, tongue*, facial-expression   head_neck
spine01, spine02, clavicle.*, shoulder01.*, breast.*                   chest
spine03, spine04                                                       abdomen
root, spine05, pelvis.*, upperleg01.*                                  hips
upperarm01.*, upperarm02.*                                             upper_arm
lowerarm01.*, lowerarm02.*                                             forearm
wrist.*, metacarpal*, finger*                                          hand
upperleg02.*                                                           thigh
lowerleg01.*, lowerleg02.*                                             calf
foot.*, toe*                                                           foot
====================================================================== ============

The spine split (spine01-02 chest, spine03-04 abdomen, spine05 hips) puts the chest/abdomen and
abdomen/hips boundaries at about 69 % and 58 % of body height, where the SPRING segmentation has
them on SCAPE (69 % and 57 %). ``upperleg01`` (the short bone from the hip joint to the top of the
femur shaft, weighting the buttocks) goes to hips, so hips includes the buttocks down to the gluteal
fold as in SPRING; thigh is ``upperleg02``.

Landmarks (:func:`compute_landmarks`) are computed from the mesh, the part labels and the rest bone
heads with simple geometric rules; the shipped CSVs ``data/landmarks_anny_<topology>.csv`` are their
output (``python -m bodydata.templates.anny --write-landmarks`` rewrites them; a test checks they
match a recomputation). The rules, with F = front (-y), U = up (+z), S = the side's outward
direction (+x for _L, -x for _R), "ray from P along D" = the ray from the joint centre P (inside the
body) along D leaves the body through a triangle; the landmark is that triangle's corner nearest to
the exit point:

================== ==========================================================================
head_top           highest vertex of                                   head_neck
nose_tip           most anterior (F) vertex of                         head_neck
chin               head_neck vertex within 1.5 cm of the mid-sagittal plane and below the eyes,
                   farthest along (F - U)/sqrt(2): the front-lower corner of the jaw profile
ear_L/R            head_neck vertex farthest along S, above the neck03 bone head
c7                 ray from the neck01 bone head along -F (back of the neck base)
jugular_notch      ray along F from the midpoint of the clavicle.L/.R heads (sternoclavicular joints)
shoulder_L/R       ray from the upperarm01 head (shoulder joint) along U (top of the shoulder)
elbow_L/R          ray from the lowerarm01 head (elbow joint) along -F (olecranon)
wrist_L/R          ray from the wrist bone head along -F (back of the wrist)
middle_fingertip   ray from the finger3-1 head along finger3-1 head -> finger3-3 head
navel              abdomen/hips midline (|x| < 1 cm) front vertex between the spine04 and spine02
                   heights with the deepest dent: largest depth behind the straight line joining
                   the profile points 5 cm above and below
crotch             lowest vertex within 1 cm of the mid-sagittal plane
hip_L/R            ray from the upperleg01 head (hip joint) along S (greater trochanter)
knee_L/R           ray from the lowerleg01 head (knee joint) along F (patella)
ankle_L/R          ray from the foot bone head (ankle joint) along S (lateral malleolus)
heel_L/R           foot vertex farthest along (-F - U)/sqrt(2)
big_toe_L/R        ray from the toe1-2 head (big toe's distal phalanx) along F
================== ==========================================================================
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from bodydata.errors import TemplateError
from bodydata.templates.parts import PART_INDEX, PART_NAMES, clean_part_islands

TOPOLOGIES: dict[str, str] = {"anny": "notoes", "anny-lite": "notoes_collapse10pc"}
EXPECTED_COUNTS: dict[str, tuple[int, int]] = {"notoes": (12272, 24540), "notoes_collapse10pc": (1229, 2454)}

_FACE_BONE_PREFIXES = (
    "jaw", "tongue", "oris", "levator", "special", "orbicularis", "temporalis", "oculi", "risorius", "eye",
)
# Side-less part of each bone base name (the name without its .L/.R suffix).
_BONE_BASE_TO_PART: dict[str, str] = {
    "neck01": "head_neck", "neck02": "head_neck", "neck03": "head_neck", "head": "head_neck",
    "spine01": "chest", "spine02": "chest", "clavicle": "chest", "shoulder01": "chest", "breast": "chest",
    "spine03": "abdomen", "spine04": "abdomen",
    "root": "hips", "spine05": "hips", "pelvis": "hips",
    "upperarm01": "upper_arm", "upperarm02": "upper_arm",
    "lowerarm01": "forearm", "lowerarm02": "forearm",
    "wrist": "hand",
    "upperleg01": "hips", "upperleg02": "thigh",
    "lowerleg01": "calf", "lowerleg02": "calf",
    "foot": "foot",
}
_LATERAL_PARTS = {"upper_arm", "forearm", "hand", "thigh", "calf", "foot"}


def bone_part(bone: str) -> str:
    """The part name (one of :data:`PART_NAMES`) a bone of anny's default rig belongs to.

    Raises TemplateError for a bone the table does not know (a different rig).
    """
    base, _, side = bone.partition(".")
    if base.startswith(("finger", "metacarpal")):
        part = "hand"
    elif base.startswith("toe"):
        part = "foot"
    elif base.startswith(_FACE_BONE_PREFIXES):
        part = "head_neck"
    else:
        part = _BONE_BASE_TO_PART.get(base)
    if part is None:
        raise TemplateError(f"anny bone {bone!r} has no body part in the bone -> part table (only the default rig is supported)")
    if part in _LATERAL_PARTS:
        if side not in ("L", "R"):
            raise TemplateError(f"anny bone {bone!r} belongs to a limb but has no .L/.R side")
        part = f"{part}_{side}"
    return part


def bone_part_matrix(bone_labels: list[str]) -> np.ndarray:
    """(n_bones,) int64 part id of each bone."""
    return np.array([PART_INDEX[bone_part(b)] for b in bone_labels], dtype=np.int64)


def part_labels_from_skinning(
    bone_indices: np.ndarray, bone_weights: np.ndarray, bone_labels: list[str], faces: np.ndarray
) -> np.ndarray:
    """Per-vertex part id (n,) int64 from skinning.

    bone_indices, bone_weights : (n, k) int64 / float64, the k bone influences of each vertex.
    Each vertex sums its weights per part (bone -> part by :func:`bone_part`) and takes the argmax
    (ties: lower part id); islands are then merged so every part is one connected region.
    """
    bone_to_part = bone_part_matrix(bone_labels)
    n = len(bone_indices)
    sums = np.zeros((n, len(PART_NAMES)), dtype=np.float64)
    rows = np.repeat(np.arange(n), bone_indices.shape[1])
    np.add.at(sums, (rows, bone_to_part[bone_indices.reshape(-1)]), bone_weights.reshape(-1))
    return clean_part_islands(faces, sums.argmax(axis=1))


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run the enclosed torch/BLAS work on one thread, then restore the caller's thread counts.

    Why: anny's blend-shape sums are BLAS/OpenMP reductions whose blocking follows the thread count,
    so a build under 1 thread differed from a 2-thread build in the last bit (1.1e-16 m) and a cached
    template no longer equalled a fresh one. One thread fixes the summation order whatever the caller
    (a test, a dask worker after ``limit_threads``) has set; the evaluation is a single forward pass.
    """
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def load_anny_rest(topology: str) -> dict:
    """Evaluate anny once (default phenotype, no pose) and return numpy arrays.

    Returns a dict: ``vertices`` (n, 3) float64 rest vertices, ``faces`` (m, 3) int64,
    ``bone_labels`` list[str], ``bone_heads`` (n_bones, 3) float64 rest bone heads,
    ``bone_parents`` (n_bones,) int64 (-1 for the root), ``bone_indices`` (n, 9) int64, ``bone_weights`` (n, 9)
    float64, ``anny_version`` str.
    """
    import anny
    import torch

    with single_threaded(), torch.no_grad():
        model = anny.Anny(topology=topology)
        out = model()
    return {
        "vertices": out["rest_vertices"][0].detach().cpu().numpy().astype(np.float64),
        "faces": model.faces.detach().cpu().numpy().astype(np.int64),
        "bone_labels": list(model.bone_labels),
        "bone_heads": out["rest_bone_heads"][0].detach().cpu().numpy().astype(np.float64),
        "bone_parents": np.asarray(model.bone_parents, dtype=np.int64),
        "bone_indices": model.vertex_bone_indices.detach().cpu().numpy().astype(np.int64),
        "bone_weights": model.vertex_bone_weights.detach().cpu().numpy().astype(np.float64),
        "anny_version": getattr(anny, "__version__", "unknown"),
    }


def check_left_is_plus_x(bone_labels: list[str], bone_heads: np.ndarray) -> None:
    """Raise TemplateError unless every ``.L`` bone head off the mid-plane has x > 0 and its ``.R`` twin x < 0.

    Bones whose heads sit on the mid-plane (|x| < 1 mm, e.g. ``pelvis.L`` at the root) are skipped.
    """
    index = {b: i for i, b in enumerate(bone_labels)}
    for bone, i in index.items():
        if bone.endswith(".L") and bone[:-2] + ".R" in index:
            xl, xr = bone_heads[i, 0], bone_heads[index[bone[:-2] + ".R"], 0]
            if max(abs(xl), abs(xr)) < 1e-3:
                continue
            if not (xl > 0 > xr):
                raise TemplateError(f"anny bone {bone} is at x={xl:.3f}, its .R twin at x={xr:.3f}: left is not +x")


# ---------------------------------------------------------------------------------------------- landmarks
_F = np.array([0.0, -1.0, 0.0])  # front
_U = np.array([0.0, 0.0, 1.0])  # up
_SIDE = {"L": np.array([1.0, 0.0, 0.0]), "R": np.array([-1.0, 0.0, 0.0])}  # outward, the subject's own side


def _ray_exit(vertices: np.ndarray, faces: np.ndarray, origin: np.ndarray, direction: np.ndarray, what: str) -> int:
    """Where a ray from a joint centre inside the body leaves it: the corner nearest to the first hit.

    Intersects the ray origin + t*direction (t > 0) with every triangle (Moller-Trumbore) and returns
    the vertex of the nearest hit triangle closest to the hit point.
    """
    d = direction / np.linalg.norm(direction)
    tri = vertices[faces]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    p = np.cross(d, e2)
    det = np.einsum("ij,ij->i", e1, p)
    ok = np.abs(det) > 1e-15
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = origin - tri[:, 0]
    u = np.einsum("ij,ij->i", s, p) * inv
    q = np.cross(s, e1)
    w = (q @ d) * inv
    t = np.einsum("ij,ij->i", e2, q) * inv
    hit = ok & (u >= 0) & (w >= 0) & (u + w <= 1) & (t > 0)
    if not hit.any():
        raise TemplateError(f"landmark {what}: the ray from its joint does not meet the surface")
    k = int(np.flatnonzero(hit)[np.argmin(t[hit])])
    point = origin + t[k] * d
    corners = faces[k]
    return int(corners[np.argmin(np.linalg.norm(vertices[corners] - point, axis=1))])


def _extreme(vertices: np.ndarray, mask: np.ndarray, direction: np.ndarray, what: str) -> int:
    """Vertex id among ``mask`` farthest along ``direction``."""
    cand = np.flatnonzero(mask)
    if len(cand) == 0:
        raise TemplateError(f"landmark {what}: no candidate vertices")
    return int(cand[np.argmax(vertices[cand] @ direction)])


def _navel(vertices: np.ndarray, mask: np.ndarray, z_lo: float, z_hi: float, chord: float = 0.05) -> int:
    """The deepest dent of the front midline profile between heights z_lo and z_hi (see module docstring)."""
    cand = np.flatnonzero(mask)
    order = np.argsort(vertices[cand, 2], kind="stable")
    cand = cand[order]
    z, fwd = vertices[cand, 2], vertices[cand] @ _F
    chord_fwd = 0.5 * (np.interp(z - chord, z, fwd) + np.interp(z + chord, z, fwd))
    depth = np.where((z > z_lo) & (z < z_hi), chord_fwd - fwd, -np.inf)
    if not np.isfinite(depth).any():
        raise TemplateError("landmark navel: no front midline vertex in the abdomen height range")
    return int(cand[np.argmax(depth)])


def compute_landmarks(
    vertices: np.ndarray, faces: np.ndarray, labels: np.ndarray, bone_labels: list[str], bone_heads: np.ndarray
) -> dict[str, int]:
    """The 27 shared landmarks on an anny rest mesh (rules in the module docstring).

    vertices : (n, 3) float64 rest vertices (z-up, facing -y, left = +x). faces : (m, 3) int64.
    labels : (n,) int64 part ids.
    bone_heads : (n_bones, 3) float64 rest bone heads, named by ``bone_labels``.
    Returns {name: vertex id} in :data:`~bodydata.templates.landmarks.LANDMARK_NAMES` order.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    bone = {b: bone_heads[i] for i, b in enumerate(bone_labels)}

    def part(*names: str) -> np.ndarray:
        return np.isin(labels, [PART_INDEX[n] for n in names])

    midline = np.abs(v[:, 0]) < 0.01
    head = part("head_neck")
    lm: dict[str, int] = {}
    lm["head_top"] = _extreme(v, head, _U, "head_top")
    lm["nose_tip"] = _extreme(v, head, _F, "nose_tip")
    eye_z = 0.5 * (bone["eye.L"][2] + bone["eye.R"][2])
    lm["chin"] = _extreme(v, head & (np.abs(v[:, 0]) < 0.015) & (v[:, 2] < eye_z), (_F - _U) / np.sqrt(2), "chin")
    for s in "LR":
        lm[f"ear_{s}"] = _extreme(v, head & (v[:, 2] > bone["neck03"][2]), _SIDE[s], f"ear_{s}")
    lm["c7"] = _ray_exit(v, f, bone["neck01"], -_F, "c7")
    sternoclavicular = 0.5 * (bone["clavicle.L"] + bone["clavicle.R"])
    lm["jugular_notch"] = _ray_exit(v, f, sternoclavicular, _F, "jugular_notch")
    for s in "LR":
        lm[f"shoulder_{s}"] = _ray_exit(v, f, bone[f"upperarm01.{s}"], _U, f"shoulder_{s}")
    for s in "LR":
        lm[f"elbow_{s}"] = _ray_exit(v, f, bone[f"lowerarm01.{s}"], -_F, f"elbow_{s}")
    for s in "LR":
        lm[f"wrist_{s}"] = _ray_exit(v, f, bone[f"wrist.{s}"], -_F, f"wrist_{s}")
    for s in "LR":
        a, b = bone[f"finger3-1.{s}"], bone[f"finger3-3.{s}"]
        lm[f"middle_fingertip_{s}"] = _ray_exit(v, f, a, b - a, f"middle_fingertip_{s}")
    front = (v - v.mean(axis=0)) @ _F > 0
    lm["navel"] = _navel(v, part("abdomen", "hips") & midline & front, bone["spine04"][2], bone["spine02"][2])
    lm["crotch"] = _extreme(v, midline, -_U, "crotch")
    for s in "LR":
        lm[f"hip_{s}"] = _ray_exit(v, f, bone[f"upperleg01.{s}"], _SIDE[s], f"hip_{s}")
    for s in "LR":
        lm[f"knee_{s}"] = _ray_exit(v, f, bone[f"lowerleg01.{s}"], _F, f"knee_{s}")
    for s in "LR":
        lm[f"ankle_{s}"] = _ray_exit(v, f, bone[f"foot.{s}"], _SIDE[s], f"ankle_{s}")
    for s in "LR":
        lm[f"heel_{s}"] = _extreme(v, part(f"foot_{s}"), (-_F - _U) / np.sqrt(2), f"heel_{s}")
    for s in "LR":
        lm[f"big_toe_{s}"] = _ray_exit(v, f, bone[f"toe1-2.{s}"], _F, f"big_toe_{s}")
    from bodydata.templates.landmarks import LANDMARK_NAMES

    return {name: lm[name] for name in LANDMARK_NAMES}


# ---------------------------------------------------------------------------------------------- building
CAVITY_LABELS = ("mouth_cavity", "tongue")


def cavity_vertices(rest_vertices: np.ndarray, tolerance: float) -> np.ndarray:
    """Sorted int64 ids of the vertices of ``rest_vertices`` (n, 3) that lie in anny's mouth cavity or tongue.

    No scanner sees inside the mouth, so registration gives these vertices no data term and the conversion
    metrics leave them out. anny labels faces by texture (:func:`anny.face_segmentation.get_face_segmentation_mask`),
    which only its default 13,718-vertex topology carries; the notoes vertices coincide with default vertices
    (to 1e-15 m), so each vertex takes the label of its nearest default vertex within ``tolerance`` metres.
    """
    import anny
    import torch
    from anny.face_segmentation import get_face_segmentation_mask
    from scipy.spatial import cKDTree

    with single_threaded(), torch.no_grad():
        model = anny.Anny()
        ref = model()["rest_vertices"][0].detach().cpu().numpy().astype(np.float64)
    mask = get_face_segmentation_mask(model, list(CAVITY_LABELS))
    faces = model.faces.detach().cpu().numpy()[np.asarray(mask, bool)]
    inside = np.zeros(len(ref), bool)
    inside[np.unique(faces)] = True
    dist, idx = cKDTree(ref).query(np.asarray(rest_vertices, np.float64))
    return np.flatnonzero(inside[idx] & (dist <= tolerance)).astype(np.int64)


def build_anny_parts(topology: str) -> tuple[dict, np.ndarray]:
    """Rest arrays of :func:`load_anny_rest` and the (n,) int64 part labels, checked against the expected counts."""
    rest = load_anny_rest(topology)
    n_expected, m_expected = EXPECTED_COUNTS[topology]
    if rest["vertices"].shape != (n_expected, 3) or rest["faces"].shape != (m_expected, 3):
        raise TemplateError(
            f"anny topology {topology!r} has {len(rest['vertices'])} vertices / {len(rest['faces'])} faces, "
            f"expected {n_expected} / {m_expected} (a different anny version?)"
        )
    check_left_is_plus_x(rest["bone_labels"], rest["bone_heads"])
    labels = part_labels_from_skinning(rest["bone_indices"], rest["bone_weights"], rest["bone_labels"], rest["faces"])
    return rest, labels


def build_anny_template(name: str = "anny"):
    """Build the ``anny`` (notoes) or ``anny-lite`` (notoes_collapse10pc) template.

    Landmarks come from the shipped CSV of the topology when it exists (they are the output of
    :func:`compute_landmarks`), else they are computed.
    """
    from bodydata.templates.landmarks import landmarks_path, load_landmarks
    from bodydata.templates.template import Template

    if name not in TOPOLOGIES:
        raise TemplateError(f"unknown anny template {name!r} (known: {', '.join(TOPOLOGIES)})")
    topology = TOPOLOGIES[name]
    rest, labels = build_anny_parts(topology)
    lm_topology = f"anny_{topology}"
    if landmarks_path(lm_topology).is_file():
        landmarks = load_landmarks(lm_topology)
    else:
        landmarks = compute_landmarks(rest["vertices"], rest["faces"], labels, rest["bone_labels"], rest["bone_heads"])
    tpl = Template(
        name=name,
        vertices=rest["vertices"],
        faces=rest["faces"],
        part_labels=labels,
        part_names=list(PART_NAMES),
        landmarks=landmarks,
        units="m",
        up_axis="z",
        front_axis="-y",
        meta={
            "builder": "bodydata.templates.anny",
            "anny_version": rest["anny_version"],
            "anny_topology": topology,
            "anny_rig": "anny",
            "phenotype": "default (all 0.5)",
            "pose": "rest (rest_vertices, the rig's bind pose)",
            "landmark_topology": lm_topology,
            "expect_watertight": True,
            # notoes coincides with the default topology; the collapsed one is within ~2 cm of it
            "cavity_vertices": cavity_vertices(rest["vertices"], 1e-6 if topology == "notoes" else 0.02).tolist(),
        },
    )
    tpl.validate(strict=True)
    return tpl


def write_shipped_landmarks() -> list[str]:
    """Recompute and write ``data/landmarks_anny_<topology>.csv`` for both anny topologies; returns the paths."""
    from bodydata.templates.landmarks import landmarks_path, write_landmarks_csv

    written = []
    for topology in TOPOLOGIES.values():
        rest, labels = build_anny_parts(topology)
        lm = compute_landmarks(rest["vertices"], rest["faces"], labels, rest["bone_labels"], rest["bone_heads"])
        written.append(str(write_landmarks_csv(landmarks_path(f"anny_{topology}"), lm)))
    return written


if __name__ == "__main__":  # python -m bodydata.templates.anny --write-landmarks
    import sys

    if sys.argv[1:] == ["--write-landmarks"]:
        for p in write_shipped_landmarks():
            print(p)
    else:
        print("usage: python -m bodydata.templates.anny --write-landmarks")
        sys.exit(2)
