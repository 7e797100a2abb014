"""Derive the SMPL (6,890-vertex) and SCAPE (12,500-vertex) landmark vertex ids from body geometry.

Writes ``bodydata/templates/data/landmarks_smpl_6890.csv`` and ``landmarks_scape_12500.csv``
(columns ``name,vertex_id``, the 27 shared landmark names) and, for inspection, PNG renders of each
set to ``--png-dir`` (outside the repository: the renders show real, licensed bodies).

Usage::

    python tools/derive_landmarks.py [--data ../shared/data] [--png-dir /tmp/bodydata_landmarks] [--no-png] [--check]

``--check`` recomputes and compares with the shipped CSVs instead of writing them (exit 1 on a
difference).

Method (the same rules on both topologies, modelled on the anny rules of
``bodydata/templates/anny.py`` so that one name means one anatomical point; where they differ it is
said below):

* Reference bodies. SMPL order: FAUST ``tr_reg_000`` (standing, arms ~20 degrees from the body,
  y-up, facing +z, left +x). SCAPE order: the SPRING male mean body (same vertex order as SCAPE,
  standing A-pose), rotated into the FAUST frame by the proper rotation that best aligns the 78
  DHNN reference<->SMPL correspondences (``dhnn/bodyrep_corres.txt``) to FAUST ``tr_reg_000``.
  In that frame U = +y (up), F = +z (front), S = +x for a ``_L`` landmark and -x for ``_R``.
* Symmetry. Each reference body is replaced by the mean of itself and its mirror image (vertex i with
  the mirror of its left-right partner; partners = nearest mirror images on the symmetric SMPL T-pose
  body ``smpl/odedstein_cc_by/human_man.obj`` resp. on the SPRING mean itself), so _L and _R land on
  mirror-image vertices although FAUST tr_reg_000 holds its arms and feet asymmetrically. Each _R
  id is then set to the partner of the _L id, so the pairs are exact mirror images under that map.
* Parts. 16 parts as in ``bodydata.templates.parts``: on SMPL from the Meshcapade SMPL part
  segmentation (head+neck -> head_neck, spine1/spine2/shoulders -> chest, spine -> abdomen, ...), on
  SCAPE from the SPRING 16-part vertex colours (the colour->part map below was read off part
  centroids on SCAPE mesh000: heights along +x and sides along -z = the subject's left).
* Joints. The centroid of the midpoints of the mesh edges that cross between two parts: neck base
  (head_neck|chest), shoulder (upper_arm|chest), elbow, wrist, knee, ankle; the hip joint is the
  thigh|hips seam's centroid raised to the seam's highest point (the hips part holds the buttocks,
  so the seam's centroid lies 3-6 % of body height below the joint).
* Rules. "ray from P along D, r" = among vertices within r of the line through P along D, the one
  farthest along D (r grows by half where the mesh is coarser); a ray only sees the parts on both
  sides of its joint (neck: head_neck+chest, shoulder: chest+upper_arm, hip: hips+thigh, ...), so an
  arm hanging beside the thigh is never a hip.

  ====================  ===================================================================
  head_top              highest vertex of head_neck
  nose_tip              most anterior vertex of head_neck
  chin                  head_neck vertex within 1.5 cm of the mid-sagittal plane, below the nose tip,
                        farthest along (F - U)/sqrt(2)
  ear_L/R               head_neck vertex farthest along S, above the nose tip's height minus 2 cm
  c7                    ray from the neck base (moved onto the mid-plane) along -F, r = 1.5 cm
  jugular_notch         most posterior point of the front midline profile (|x - mid| < 1 cm, most anterior
                        vertex per 5 mm of height) within 15 cm below the chin: the dip between throat and
                        sternum. (anny casts a ray from its sternoclavicular joints; SMPL/SPRING have
                        no such joint, and a ray from their neck seam lands on the throat: their neck
                        part ends 4-5 cm above the shoulders.)
  shoulder_L/R          ray from the shoulder joint along U, r = 2.5 cm
  elbow_L/R             ray from the elbow joint along -F, r = 1.5 cm
  wrist_L/R             ray from the wrist joint along -F, r = 1.5 cm
  middle_fingertip_L/R  hand vertex within 1.5 cm of the line wrist joint -> hand centroid, farthest along it
  navel                 front midline vertex (|x - mid| < 1 cm, in front of the hip joints) of
                        abdomen/hips, between 55 % and 66 % of body height, with the deepest dent
                        behind the straight line joining the front profile 4 cm above and below
                        (without the window the rule wanders to the groin). On SCAPE the rule runs on
                        SCAPE mesh000 (a scan of the SCAPE subject, same vertex order): the SPRING mean
                        is an average body without a navel dent.
  crotch                first hips/thigh/abdomen vertex met by a ray going up (U, r = 1.5 cm) from the
                        mid-plane point between the knee joints (the lowest-midline-vertex rule picked
                        an inner-thigh vertex 14 cm low on SMPL, where the thighs touch the mid-plane)
  hip_L/R               ray from the hip joint along S, r = 2 cm
  knee_L/R              ray from the knee joint along F, r = 2 cm
  ankle_L/R             ray from the ankle joint along S, r = 1.5 cm
  heel_L/R              foot vertex farthest along (-F - U)/sqrt(2)
  big_toe_L/R           most anterior foot vertex on the medial side of the foot's centroid
  thumb_tip_L/R         most anterior hand vertex (the arms hang by the thighs with the palms towards
                        them, so the thumbs point forward); optional names beyond the shared
                        vocabulary (``OPTIONAL_LANDMARK_NAMES``): they fix the hand's turn about the
                        forearm, which wrist and middle fingertip leave free
  ====================  ===================================================================

* Published SMPL keypoint vertex ids (SMPL-H/SMPL-X ``vertex_ids``: nose 332, ears 583/4071,
  middle fingertips 2445/5905, thumb tips 2746/6191, big toes 3216/6617, heels 3387/6787) check the SMPL set: each must
  lie on the intended side and within 3.5 cm of the rule's vertex on the reference body (the
  distances are printed). The CSV keeps the rule's vertex so that every topology uses one
  definition (e.g. the published ear point is the ear's centre, the rule's the ear's outermost
  point; the published heel sits 3 cm higher up the back of the heel).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bodydata.mesh import read_mesh  # noqa: E402
from bodydata.templates.parts import PART_INDEX, PART_NAMES  # noqa: E402

LANDMARK_NAMES: tuple[str, ...] = (
    "head_top", "nose_tip", "chin", "ear_L", "ear_R", "c7", "jugular_notch", "shoulder_L", "shoulder_R",
    "elbow_L", "elbow_R", "wrist_L", "wrist_R", "middle_fingertip_L", "middle_fingertip_R", "navel", "crotch",
    "hip_L", "hip_R", "knee_L", "knee_R", "ankle_L", "ankle_R", "heel_L", "heel_R", "big_toe_L", "big_toe_R",
)
OPTIONAL_NAMES: tuple[str, ...] = ("thumb_tip_L", "thumb_tip_R")
ALL_NAMES = LANDMARK_NAMES + OPTIONAL_NAMES
DATA_DIR = REPO / "bodydata" / "templates" / "data"

PUBLISHED_SMPL: dict[str, int] = {
    "nose_tip": 332, "ear_L": 583, "ear_R": 4071, "middle_fingertip_L": 2445, "middle_fingertip_R": 5905,
    "thumb_tip_L": 2746, "thumb_tip_R": 6191,
    "big_toe_L": 3216, "big_toe_R": 6617, "heel_L": 3387, "heel_R": 6787,
}

SMPL_PART_MAP: dict[str, str] = {
    "head": "head_neck", "neck": "head_neck",
    "spine2": "chest", "spine1": "chest", "leftShoulder": "chest", "rightShoulder": "chest",
    "spine": "abdomen", "hips": "hips",
    "leftArm": "upper_arm_L", "leftForeArm": "forearm_L", "leftHand": "hand_L", "leftHandIndex1": "hand_L",
    "rightArm": "upper_arm_R", "rightForeArm": "forearm_R", "rightHand": "hand_R", "rightHandIndex1": "hand_R",
    "leftUpLeg": "thigh_L", "leftLeg": "calf_L", "leftFoot": "foot_L", "leftToeBase": "foot_L",
    "rightUpLeg": "thigh_R", "rightLeg": "calf_R", "rightFoot": "foot_R", "rightToeBase": "foot_R",
}

# SPRING colour label (body_part_vertex_labels_DERIVED.txt) -> part. Read off part centroids on SCAPE
# mesh000 (up +x, subject's left -z): 4 highest, 0/15 lowest, 11 > 1 > 14 down the torso, and the
# side of each limb part from the sign of its z centroid. ``spring_part_labels`` re-checks this.
SPRING_PART_MAP: dict[int, str] = {
    4: "head_neck", 11: "chest", 1: "abdomen", 14: "hips",
    6: "upper_arm_L", 5: "forearm_L", 7: "hand_L", 9: "upper_arm_R", 2: "forearm_R", 10: "hand_R",
    8: "thigh_L", 3: "calf_L", 0: "foot_L", 12: "thigh_R", 13: "calf_R", 15: "foot_R",
}

# How far a published SMPL keypoint vertex may lie from the rule's vertex on the reference body.
PUBLISHED_TOLERANCE = 0.035

U = np.array([0.0, 1.0, 0.0])
F = np.array([0.0, 0.0, 1.0])
X = np.array([1.0, 0.0, 0.0])  # the subject's left in the canonical frame


@dataclass
class Body:
    """A reference body in the canonical frame (y up, facing +z, left +x), metres.

    vertices : (n, 3) float64; faces : (m, 3) int64; labels : (n,) int64 part ids (PART_NAMES order).
    """

    vertices: np.ndarray
    faces: np.ndarray
    labels: np.ndarray


# ----------------------------------------------------------------------------------------------
# geometry helpers


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising sum |s R src_i + t - dst_i|^2 with det R = +1. src, dst : (k, 3)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(3)
    if np.linalg.det(u @ vt) < 0:
        d[2] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / a.var(0).sum()) if with_scale else 1.0
    return scale, rot, mu_d - scale * rot @ mu_s


def boundary_points(body: Body, part_a: str, parts_b: tuple[str, ...]) -> np.ndarray:
    """(k, 3) midpoints of the edges joining part_a to any of parts_b (the seam between the parts)."""
    e = np.concatenate([body.faces[:, [0, 1]], body.faces[:, [1, 2]], body.faces[:, [2, 0]]])
    la, lb = body.labels[e[:, 0]], body.labels[e[:, 1]]
    a = PART_INDEX[part_a]
    bs = [PART_INDEX[p] for p in parts_b]
    cross = ((la == a) & np.isin(lb, bs)) | ((lb == a) & np.isin(la, bs))
    if not cross.any():
        raise ValueError(f"parts {part_a} and {parts_b} do not touch")
    return body.vertices[e[cross]].mean(axis=1)


def boundary_centroid(body: Body, part_a: str, parts_b: tuple[str, ...]) -> np.ndarray:
    """(3,) centroid of the seam between two parts (a joint estimate)."""
    return boundary_points(body, part_a, parts_b).mean(axis=0)


def hip_joint(body: Body, side: str) -> np.ndarray:
    """(3,) hip joint estimate: the thigh|hips seam centroid raised to the seam's highest point.

    Both segmentations give the buttocks to ``hips``, so the seam's centroid sits 3-6 % of body height
    below the hip joint; its top (laterally, over the trochanter) is close to the joint's height.
    """
    seam = boundary_points(body, f"thigh_{side}", ("hips",))
    centre = seam.mean(axis=0)
    centre[1] = seam[:, 1].max()
    return centre


def ray(vertices: np.ndarray, origin: np.ndarray, direction: np.ndarray, radius: float,
        mask: np.ndarray | None = None, first: bool = False) -> int:
    """Among vertices within ``radius`` of the half-line from origin along direction, the farthest along it
    (``first``: the nearest along it, i.e. the first surface the ray meets when it starts outside the body).

    Where the mesh is coarser than the radius (SMPL's thighs: ~2.5 cm between vertices) the radius
    grows by half until a vertex is found (at most 4 times).
    """
    d = vertices - origin
    t = d @ direction
    perp = np.linalg.norm(d - t[:, None] * direction, axis=1)
    base = t > 0
    if mask is not None:
        base &= mask
    for _ in range(5):
        cand = base & (perp < radius)
        if cand.any():
            idx = np.flatnonzero(cand)
            return int(idx[np.argmin(t[idx]) if first else np.argmax(t[idx])])
        radius *= 1.5
    raise ValueError(f"no vertex within {radius} m of the ray from {origin} along {direction}")


def argmax_in(values: np.ndarray, mask: np.ndarray) -> int:
    idx = np.flatnonzero(mask)
    return int(idx[np.argmax(values[idx])])


def front_profile(v: np.ndarray, cand: np.ndarray, bin_size: float = 0.005) -> np.ndarray:
    """Of the candidate vertex ids, those that are the most anterior (max z) in their height bin."""
    bins = np.floor(v[cand, 1] / bin_size).astype(np.int64)
    order = np.lexsort((-v[cand, 2], bins))
    first = np.ones(len(order), dtype=bool)
    first[1:] = bins[order][1:] != bins[order][:-1]
    return cand[order[first]]


def jugular_vertex(v: np.ndarray, mid_x: float, chin_y: float, neck: np.ndarray, depth: float = 0.15) -> int:
    """Most posterior point of the front midline profile within ``depth`` below the chin (the suprasternal
    notch); only vertices in front of the neck-base joint count as front."""
    cand = np.flatnonzero((np.abs(v[:, 0] - mid_x) < 0.01) & (v[:, 2] > neck[2])
                          & (v[:, 1] < chin_y) & (v[:, 1] > chin_y - depth))
    prof = front_profile(v, cand)
    return int(prof[np.argmin(v[prof, 2])])


NAVEL_WINDOW = (0.55, 0.66)  # fraction of body height searched for the navel (it sits near 0.60)


def navel_vertex(v: np.ndarray, mask: np.ndarray, mid_x: float, inside_z: float, span: float = 0.04) -> int:
    """Front-midline vertex of ``mask`` with the deepest dent below the line joining the profile +-span,
    within NAVEL_WINDOW of the body's height; front = in front of ``inside_z`` (a point inside the torso)."""
    lo, hi = v[:, 1].min(), v[:, 1].max()
    frac = (v[:, 1] - lo) / (hi - lo)
    window = (frac > NAVEL_WINDOW[0]) & (frac < NAVEL_WINDOW[1])
    cand = np.flatnonzero(mask & window & (np.abs(v[:, 0] - mid_x) < 0.01) & (v[:, 2] > inside_z))
    y, z = v[cand, 1], v[cand, 2]
    # Front profile z(y): the most anterior midline point in 5 mm height bins around each height.
    def profile(h: np.ndarray) -> np.ndarray:
        near = np.abs(y[None, :] - h[:, None]) < 0.005
        return np.where(near, z[None, :], -np.inf).max(axis=1)

    above, below = profile(y + span), profile(y - span)
    ok = np.isfinite(above) & np.isfinite(below)
    depth = np.where(ok, 0.5 * (above + below) - z, -np.inf)
    return int(cand[np.argmax(depth)])


# ----------------------------------------------------------------------------------------------
# the rules


def derive_landmarks(body: Body, partner: np.ndarray | None = None) -> dict[str, int]:
    """Apply the documented rules to a reference body in the canonical frame; returns name -> vertex id.

    partner : (n,) left-right vertex map of a symmetrized body; its fixed points (vertices within 5 mm
    of their partner) are the midline for the crotch, instead of |x - mid| < 1 cm (legs held together
    bring inner-thigh vertices near the mid-plane).
    """
    v, lab = body.vertices, body.labels

    def part(*names: str) -> np.ndarray:
        return np.isin(lab, [PART_INDEX[n] for n in names])

    j = {
        "neck": boundary_centroid(body, "head_neck", ("chest",)),
    }
    for s in ("L", "R"):
        j[f"shoulder_{s}"] = boundary_centroid(body, f"upper_arm_{s}", ("chest",))
        j[f"elbow_{s}"] = boundary_centroid(body, f"upper_arm_{s}", (f"forearm_{s}",))
        j[f"wrist_{s}"] = boundary_centroid(body, f"forearm_{s}", (f"hand_{s}",))
        j[f"hip_{s}"] = hip_joint(body, s)
        j[f"knee_{s}"] = boundary_centroid(body, f"thigh_{s}", (f"calf_{s}",))
        j[f"ankle_{s}"] = boundary_centroid(body, f"calf_{s}", (f"foot_{s}",))
    mid_x = float(np.mean([j[f"{k}_{s}"][0] for k in ("shoulder", "hip") for s in "LR"]))
    j["neck"][0] = mid_x  # the neck base lies on the mid-plane even where a seam is lopsided
    head = part("head_neck")
    out: dict[str, int] = {}
    out["head_top"] = argmax_in(v[:, 1], head)
    out["nose_tip"] = argmax_in(v[:, 2], head)
    nose_y = v[out["nose_tip"], 1]
    chin_cand = head & (np.abs(v[:, 0] - mid_x) < 0.015) & (v[:, 1] < nose_y)
    out["chin"] = argmax_in((v[:, 2] - v[:, 1]) / np.sqrt(2), chin_cand)
    ear_band = head & (v[:, 1] > nose_y - 0.02)
    out["ear_L"] = argmax_in(v[:, 0], ear_band)
    out["ear_R"] = argmax_in(-v[:, 0], ear_band)
    neck_region = part("head_neck", "chest")
    out["c7"] = ray(v, j["neck"], -F, 0.015, neck_region)
    out["jugular_notch"] = jugular_vertex(v, mid_x, v[out["chin"], 1], j["neck"])
    for s, side in (("L", X), ("R", -X)):
        # Each ray only sees the two parts around its joint (an arm hanging by the thigh is not a hip).
        out[f"shoulder_{s}"] = ray(v, j[f"shoulder_{s}"], U, 0.025, part("chest", f"upper_arm_{s}"))
        out[f"elbow_{s}"] = ray(v, j[f"elbow_{s}"], -F, 0.015, part(f"upper_arm_{s}", f"forearm_{s}"))
        out[f"wrist_{s}"] = ray(v, j[f"wrist_{s}"], -F, 0.015, part(f"forearm_{s}", f"hand_{s}"))
        hand = part(f"hand_{s}")
        axis = v[hand].mean(axis=0) - j[f"wrist_{s}"]
        out[f"middle_fingertip_{s}"] = ray(v, j[f"wrist_{s}"], axis / np.linalg.norm(axis), 0.015, hand)
        out[f"thumb_tip_{s}"] = argmax_in(v[:, 2], hand)
        out[f"hip_{s}"] = ray(v, j[f"hip_{s}"], side, 0.02, part("hips", f"thigh_{s}"))
        out[f"knee_{s}"] = ray(v, j[f"knee_{s}"], F, 0.02, part(f"thigh_{s}", f"calf_{s}"))
        out[f"ankle_{s}"] = ray(v, j[f"ankle_{s}"], side, 0.015, part(f"calf_{s}", f"foot_{s}"))
        foot = part(f"foot_{s}")
        out[f"heel_{s}"] = argmax_in((-v[:, 2] - v[:, 1]) / np.sqrt(2), foot)
        medial = foot & ((v[:, 0] - v[foot, 0].mean()) * side[0] < 0)
        out[f"big_toe_{s}"] = argmax_in(v[:, 2], medial)
    hip_centre = 0.5 * (j["hip_L"] + j["hip_R"])
    out["navel"] = navel_vertex(v, part("abdomen", "hips"), mid_x, hip_centre[2])
    # The first vertex a ray going up from between the knee joints meets: a lowest-midline-vertex rule
    # picks an inner-thigh vertex where the thighs touch the mid-plane (SMPL's T-pose: 14 cm too low).
    knees = 0.5 * (j["knee_L"] + j["knee_R"])
    knees[0] = mid_x
    out["crotch"] = ray(v, knees, U, 0.015, part("hips", "thigh_L", "thigh_R", "abdomen"), first=True)
    return {name: out[name] for name in ALL_NAMES}


# ----------------------------------------------------------------------------------------------
# reference bodies


def smpl_part_labels(seg_json: Path, n: int = 6890) -> np.ndarray:
    """(n,) int64 part ids from the Meshcapade SMPL segmentation (a vertex on a boundary takes the last listed part)."""
    seg = json.loads(Path(seg_json).read_text())
    labels = np.full(n, -1, dtype=np.int64)
    for smpl_part, ids in seg.items():
        labels[np.asarray(ids, dtype=np.int64)] = PART_INDEX[SMPL_PART_MAP[smpl_part]]
    if (labels < 0).any():
        raise ValueError(f"{int((labels < 0).sum())} SMPL vertices have no part")
    return labels


def spring_part_labels(label_txt: Path) -> np.ndarray:
    raw = np.loadtxt(label_txt, dtype=np.int64)
    lut = np.array([PART_INDEX[SPRING_PART_MAP[k]] for k in range(16)])
    return lut[raw]


def smpl_reference(data: Path) -> tuple[Body, np.ndarray]:
    """FAUST tr_reg_000, symmetrized with the left-right map of the SMPL T-pose body (``smpl/odedstein_cc_by``)."""
    mesh = read_mesh(data / "faust" / "registrations" / "tr_reg_000.ply", expected_vertices=6890)
    tpose = read_mesh(data / "smpl" / "odedstein_cc_by" / "human_man.obj", expected_vertices=6890).vertices
    partner, _ = symmetry_map(tpose)
    body = Body(mesh.vertices, mesh.faces, smpl_part_labels(data / "smpl" / "smpl_vert_segmentation.json"))
    return symmetrize(body, partner), partner


def spring_to_faust_rotation(data: Path, spring_vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R (3, 3), t (3,)) rigid map of a SCAPE-order body into the FAUST tr_reg_000 frame (78 DHNN pairs)."""
    pairs = np.loadtxt(data / "dhnn" / "bodyrep_corres.txt", dtype=np.int64)
    faust = read_mesh(data / "faust" / "registrations" / "tr_reg_000.ply").vertices
    _, rot, _ = umeyama(spring_vertices[pairs[:, 0]], faust[pairs[:, 1]])
    t = faust[pairs[:, 1]].mean(0) - rot @ spring_vertices[pairs[:, 0]].mean(0)
    return rot, t


def scape_reference(data: Path) -> tuple[Body, np.ndarray]:
    """The SPRING male mean in the FAUST frame, symmetrized, and the SCAPE-order left-right vertex map."""
    verts = np.load(data / "spring" / "release_model" / "male_mean_vertex.npy")
    faces = read_mesh(data / "scape" / "original_12500" / "mesh000.off", expected_vertices=12500).faces
    rot, t = spring_to_faust_rotation(data, verts)
    labels = spring_part_labels(data / "spring" / "data" / "body_part_vertex_labels_DERIVED.txt")
    body = Body(verts @ rot.T + t, faces, labels)
    partner, _ = symmetry_map(body.vertices)
    return symmetrize(body, partner), partner


def check_spring_part_map(data: Path) -> None:
    """Re-check SPRING_PART_MAP on SCAPE mesh000 (up +x, left -z)."""
    v = read_mesh(data / "scape" / "original_12500" / "mesh000.off").vertices
    labels = spring_part_labels(data / "spring" / "data" / "body_part_vertex_labels_DERIVED.txt")
    c = {PART_NAMES[k]: v[labels == k].mean(0) for k in range(16)}
    chain = ["head_neck", "chest", "abdomen", "hips"]
    assert all(c[a][0] > c[b][0] for a, b in zip(chain, chain[1:])), "torso parts out of vertical order"
    for limb in ("upper_arm", "forearm", "hand", "thigh", "calf", "foot"):
        assert c[f"{limb}_L"][2] < c["chest"][2] < c[f"{limb}_R"][2], f"{limb} sides swapped"
    for chain in (("thigh", "calf", "foot"), ("upper_arm", "forearm")):
        for s in "LR":
            assert all(c[f"{a}_{s}"][0] > c[f"{b}_{s}"][0] for a, b in zip(chain, chain[1:])), f"{chain} order"


def symmetry_map(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """(n,) int64 left-right vertex map of a (nearly) mirror-symmetric body in the canonical frame, and
    the mean distance (m) between a vertex's mirror image and its partner."""
    from scipy.spatial import cKDTree

    mirrored = vertices.copy()
    mirrored[:, 0] = 2.0 * vertices[:, 0].mean() - mirrored[:, 0]
    dist, partner = cKDTree(vertices).query(mirrored)
    return partner.astype(np.int64), float(dist.mean())


def symmetrize(body: Body, partner: np.ndarray) -> Body:
    """A mirror-symmetric version of a body: its symmetry plane turned onto x = const, then the mean of
    each vertex and the mirror image of its left-right partner.

    Rules on a symmetric body pick mirror-image vertices for _L and _R, so a posed reference (FAUST
    tr_reg_000 holds its arms and feet asymmetrically, and stands slightly turned) does not make the
    pairs lopsided.
    """
    v = body.vertices
    flip = np.diag([-1.0, 1.0, 1.0])
    # v ~ R flip v[partner] + t: R flip is the reflection about the body's symmetry plane, whose normal
    # is the eigenvector of R flip with eigenvalue -1.
    _, rot, _ = umeyama(v[partner] @ flip, v, with_scale=False)
    w, vecs = np.linalg.eig(rot @ flip)
    normal = np.real(vecs[:, np.argmin(np.real(w))])
    normal *= np.sign(normal[0])
    # The smallest rotation taking the normal onto +x.
    axis = np.cross(normal, X)
    sin, cos = np.linalg.norm(axis), float(normal @ X)
    if sin > 1e-12:
        k = axis / sin
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        turn = np.eye(3) + sin * kx + (1 - cos) * kx @ kx
        v = v @ turn.T
    mid = 0.5 * (v[:, 0] + v[partner, 0]).mean()
    mirrored = v[partner].copy()
    mirrored[:, 0] = 2.0 * mid - mirrored[:, 0]
    return Body(0.5 * (v + mirrored), body.faces, body.labels)


def enforce_pairs(landmarks: dict[str, int], partner: np.ndarray, vertices: np.ndarray | None = None,
                  label: str = "") -> dict[str, int]:
    """Set each _R landmark to the left-right partner of its _L landmark (exact mirror pairs).

    With ``vertices``, print how far the right-side rule's own vertex was from the partner.
    """
    out = dict(landmarks)
    for name in landmarks:
        if name.endswith("_L"):
            right = name[:-2] + "_R"
            out[right] = int(partner[landmarks[name]])
            if vertices is not None and out[right] != landmarks[right]:
                gap = np.linalg.norm(vertices[out[right]] - vertices[landmarks[right]]) * 1000
                print(f"  {label} {right:20s} rule {landmarks[right]:5d} -> partner of _L {out[right]:5d} ({gap:.1f} mm)")
    return out


def derive_smpl(data: Path, verbose: bool = True) -> dict[str, int]:
    """SMPL-order ids by the rules on (symmetrized) FAUST tr_reg_000, cross-checked against published keypoint ids."""
    body, partner = smpl_reference(data)
    rules = enforce_pairs(derive_landmarks(body, partner), partner, body.vertices if verbose else None, "smpl")
    mid_x = body.vertices[:, 0].mean()
    for name, vid in PUBLISHED_SMPL.items():
        dist = float(np.linalg.norm(body.vertices[vid] - body.vertices[rules[name]]))
        side = np.sign(body.vertices[vid, 0] - mid_x)
        if name.endswith("_L") and side < 0 or name.endswith("_R") and side > 0:
            raise ValueError(f"published SMPL vertex {vid} for {name} is on the wrong side")
        if dist > PUBLISHED_TOLERANCE:
            raise ValueError(f"published SMPL vertex {vid} for {name} is {dist * 1000:.0f} mm from the rule's vertex")
        if verbose:
            print(f"  smpl {name:20s} published {vid:5d} vs rule {rules[name]:5d}: {dist * 1000:5.1f} mm apart")
    return rules


def derive_scape(data: Path, verbose: bool = True) -> dict[str, int]:
    check_spring_part_map(data)
    body, partner = scape_reference(data)
    rules = derive_landmarks(body, partner)
    # The SPRING mean is an average body: smooth, without a navel dent. SCAPE mesh000 (a real scan of
    # the SCAPE subject, same vertex order) has one; the navel comes from it, with the same rule.
    mesh000 = read_mesh(data / "scape" / "original_12500" / "mesh000.off", expected_vertices=12500).vertices
    rot, t = spring_to_faust_rotation(data, mesh000)
    scan = Body(mesh000 @ rot.T + t, body.faces, body.labels)
    hips = 0.5 * (hip_joint(scan, "L") + hip_joint(scan, "R"))
    mid_x = float(np.mean([boundary_centroid(scan, f"{p}_{s}", (q,))[0] for p, q in (("upper_arm", "chest"), ("thigh", "hips")) for s in "LR"]))
    rules["navel"] = navel_vertex(scan.vertices, np.isin(scan.labels, [PART_INDEX["abdomen"], PART_INDEX["hips"]]), mid_x, hips[2])
    return enforce_pairs(rules, partner, body.vertices if verbose else None, "scape")


# ----------------------------------------------------------------------------------------------
# output


def write_csv(path: Path, landmarks: dict[str, int]) -> None:
    from bodydata.fsutil import atomic_write_text

    lines = ["name,vertex_id"] + [f"{n},{landmarks[n]}" for n in ALL_NAMES]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_csv(path: Path) -> dict[str, int]:
    rows = [ln.split(",") for ln in Path(path).read_text().splitlines()[1:] if ln.strip()]
    return {name: int(vid) for name, vid in rows}


def render(vertices: np.ndarray, faces: np.ndarray, landmarks: dict[str, int], out_png: Path, title: str,
           up_axis="y", front_axis="z", labels: np.ndarray | None = None, dpi: int = 150) -> Path:
    from bodydata.templates.parts import PART_COLORS
    from bodydata.viz.parts_render import render_mesh_views

    names = list(landmarks)
    colors = None if labels is None else np.asarray(PART_COLORS)[labels]
    return render_mesh_views(vertices, faces, colors, out_png, points=vertices[[landmarks[n] for n in names]],
                             labels=names, up_axis=up_axis, front_axis=front_axis, title=title, dpi=dpi)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--png-dir", type=Path, default=Path("/tmp/bodydata_landmarks"))
    ap.add_argument("--no-png", action="store_true", help="do not render")
    ap.add_argument("--check", action="store_true", help="compare with the shipped CSVs instead of writing")
    args = ap.parse_args(argv)
    smpl = derive_smpl(args.data)
    scape = derive_scape(args.data)
    status = 0
    for topo, lm in (("smpl_6890", smpl), ("scape_12500", scape)):
        path = DATA_DIR / f"landmarks_{topo}.csv"
        if args.check:
            shipped = read_csv(path)
            diff = {n: (shipped.get(n), lm[n]) for n in ALL_NAMES if shipped.get(n) != lm[n]}
            print(f"{path}: {'matches' if not diff else f'differs: {diff}'}")
            status |= bool(diff)
        else:
            write_csv(path, lm)
            print(f"wrote {path}")
    if not args.no_png:
        ref, _ = smpl_reference(args.data)
        print("wrote", render(ref.vertices, ref.faces, smpl, args.png_dir / "landmarks_smpl_6890.png",
                              "smpl_6890 landmarks on FAUST tr_reg_000", labels=ref.labels))
        sref, _ = scape_reference(args.data)
        print("wrote", render(sref.vertices, sref.faces, scape, args.png_dir / "landmarks_scape_12500.png",
                              "scape_12500 landmarks on the SPRING male mean (FAUST frame)", labels=sref.labels))
        m0 = read_mesh(args.data / "scape" / "original_12500" / "mesh000.off")
        print("wrote", render(m0.vertices, m0.faces, scape, args.png_dir / "landmarks_scape_12500_mesh000.png",
                              "scape_12500 landmarks on SCAPE mesh000 (up +x, front -y)", up_axis="x", front_axis="-y"))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
