"""Library of plausible human key poses for anny as anatomical joint angles, perturbed inside joint limits.

Conventions
-----------
* Body frame of anny (z-up, metres): the subject faces -y, so ``anterior = (0, -1, 0)``,
  the subject's own left is ``+x`` (bones ``*.L``), ``up = (0, 0, 1)``. Verified on renders: the
  ``eye.L`` bone head lies at +x, the toes at -y.
* A *joint* here is an anatomical joint acting on one or more anny bones (the spine's bend is shared
  equally by ``spine05..spine01``, the neck's by ``neck01..neck03``). Each joint has named degrees
  of freedom (DOFs) in degrees. A swing DOF rotates the bone about the axis ``a x d`` where ``a`` is
  the bone's direction at anny's reference pose (head towards its distal child) and ``d`` is a body
  direction, so a positive angle swings the distal end towards ``d``: e.g. hip ``flexion`` swings the
  knee anteriorly, knee ``flexion`` swings the ankle posteriorly, shoulder ``abduction`` swings the
  elbow laterally (to the subject's left for ``.L``, right for ``.R``). A twist DOF rotates about
  ``a`` itself (``medial_rotation`` turns the limb's front towards the midline; the trunk's
  ``rotation`` turns the face to the subject's left).
* Angles are relative to anny's reference pose (all pose parameters identity), which is an A-pose:
  arms hang about 42 degrees away from the body and the elbows are slightly bent. Hence "arms at the
  sides" is shoulder abduction of about -35 degrees and a T-pose about +48.
* One bone's rotation is ``R = R_sagittal_or_first_swing @ ... @ R_twist`` in the DOF order of
  :data:`JOINTS` (twist applied first, to the bone in its reference direction). The rotation is a
  ``local-ref`` delta of anny (world-aligned axes at the bone head, carried along by the parent's
  motion), so the pose parameters of a body are identity-independent given the angles.

Joint limits were widened once, for the body fit's start poses of scanned bodies
(:mod:`bodydata.bodyfit.scan_poses`): hip external rotation 35 -> 60 degrees, clavicle elevation 30 -> 50. The key
poses hold 0 and at most 15 there, 5.8 and 5 sigma from the old limits, so data generated at jitter 1 keep their
angles (checked: seeds 0, 1, 5, 7, 11, 21, 42 x 400 identities x 12 poses x 2 attempts, 67,200 draws, none past an
old limit). At larger jitter they may not: at jitter 2, 0.2 % of hip draws and 0.6 % of the clavicle draws of the
two poses that raise it (15 degrees) pass the old limits, and those bodies differ from before.

Arrays: pose parameters are ``(B, n_bones, 4, 4) float64`` homogeneous matrices in anny's bone
order, rotation only (zero translation, so bone lengths cannot change).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from bodydata.mesh.rotations import axis_angle_matrix

ANTERIOR = np.array([0.0, -1.0, 0.0])
POSTERIOR = -ANTERIOR
LEFT = np.array([1.0, 0.0, 0.0])
RIGHT = -LEFT
UP = np.array([0.0, 0.0, 1.0])
DOWN = -UP

SIDES = ("L", "R")


@dataclass(frozen=True)
class Dof:
    """One degree of freedom: ``kind`` is ``"swing"`` (towards ``toward``) or ``"twist"``.

    toward : body direction name: anterior, posterior, up, down, left, right, lateral, medial
        (lateral/medial resolve per side). For a twist, ``toward`` is ``"medial"`` (limbs: positive
        turns the front towards the midline) or ``"left"`` (trunk: positive turns the front to the
        subject's left).
    limits : (low, high) degrees, relative to the reference A-pose.
    sigma : standard deviation (degrees) of the random perturbation at jitter 1.
    body_axis : for a swing, ``"x"``, ``"y"`` or ``"z"`` to rotate about that fixed body axis
        (signed so the distal end still moves towards ``toward``) instead of ``a x d``. Ball joints
        (shoulder, hip, trunk) use body axes so that e.g. "abduction -34 then flexion 85" points the
        arm straight forward, as anatomical angles measured from the arms-at-sides posture do.
    """

    name: str
    kind: str
    toward: str
    limits: tuple[float, float]
    sigma: float
    body_axis: str | None = None


@dataclass(frozen=True)
class Joint:
    """An anatomical joint: the anny bones it turns (angle shared equally), how to find each bone's
    direction (``distal``: the bone whose head is the distal end, or a body direction name for bones
    without a usable child) and its DOFs. ``sided`` joints exist as ``<name>.L`` and ``<name>.R``."""

    name: str
    bones: tuple[str, ...]
    distal: str
    dofs: tuple[Dof, ...]
    sided: bool = True


def _swing(name: str, toward: str, lo: float, hi: float, sigma: float, axis: str | None = None) -> Dof:
    return Dof(name, "swing", toward, (lo, hi), sigma, axis)


def _twist(name: str, toward: str, lo: float, hi: float, sigma: float) -> Dof:
    return Dof(name, "twist", toward, (lo, hi), sigma)


# Sided bone names use "{s}" for the side letter. The limits are generous anatomical ranges shifted
# to the A-pose reference; the sigmas keep perturbed poses close to their key pose.
JOINTS: tuple[Joint, ...] = (
    Joint(
        "pelvis",
        ("root",),
        "up",
        (
            _swing("flexion", "anterior", -20, 90, 3.0, "x"),
            _swing("lateral_bend", "left", -20, 20, 2.0, "y"),
            _twist("rotation", "left", -45, 45, 6.0),
        ),
        sided=False,
    ),
    Joint(
        "spine",
        ("spine05", "spine04", "spine03", "spine02", "spine01"),
        "neck01",
        (
            _swing("flexion", "anterior", -25, 80, 4.0, "x"),
            _swing("lateral_bend", "left", -30, 30, 3.0, "y"),
            _twist("rotation", "left", -40, 40, 5.0),
        ),
        sided=False,
    ),
    Joint(
        "neck",
        ("neck01", "neck02", "neck03"),
        "head",
        (
            _swing("flexion", "anterior", -35, 45, 6.0, "x"),
            _swing("lateral_bend", "left", -30, 30, 4.0, "y"),
            _twist("rotation", "left", -60, 60, 8.0),
        ),
        sided=False,
    ),
    Joint(
        "head",
        ("head",),
        "up",
        (
            _swing("flexion", "anterior", -25, 25, 4.0, "x"),
            _swing("lateral_bend", "left", -15, 15, 3.0, "y"),
            _twist("rotation", "left", -20, 20, 4.0),
        ),
        sided=False,
    ),
    Joint(
        "clavicle",
        ("clavicle.{s}",),
        "shoulder01.{s}",
        (
            # up to 50 (30 before): hands on the head raise the shoulders that far (FAUST's pose 7 fits at 42-51)
            _swing("elevation", "up", -10, 50, 3.0, "y"),
            _swing("protraction", "anterior", -15, 20, 3.0, "z"),
        ),
    ),
    Joint(
        "shoulder",
        ("upperarm01.{s}",),
        "lowerarm01.{s}",
        (
            _swing("flexion", "anterior", -50, 170, 8.0, "x"),
            _swing("abduction", "lateral", -50, 140, 8.0, "y"),
            _twist("medial_rotation", "medial", -60, 80, 10.0),
        ),
    ),
    Joint(
        "elbow",
        ("lowerarm01.{s}",),
        "wrist.{s}",
        (
            _swing("flexion", "anterior", -10, 135, 8.0),
            _twist("pronation", "medial", -50, 50, 10.0),
        ),
    ),
    Joint(
        "wrist",
        ("wrist.{s}",),
        "finger3-1.{s}",
        (
            _swing("flexion", "posterior", -50, 60, 8.0),
            _swing("deviation", "lateral", -25, 25, 5.0),
        ),
    ),
    Joint(
        "hip",
        ("upperleg01.{s}",),
        "lowerleg01.{s}",
        (
            _swing("flexion", "anterior", -25, 125, 6.0, "x"),
            _swing("abduction", "lateral", -20, 45, 4.0, "y"),
            # external rotation to 60 (35 before): a knee turned out to the side (FAUST's pose 7 fits at -53 to -56)
            _twist("medial_rotation", "medial", -60, 35, 6.0),
        ),
    ),
    Joint(
        "knee",
        ("lowerleg01.{s}",),
        "foot.{s}",
        (_swing("flexion", "posterior", 0, 145, 6.0),),
    ),
    Joint(
        "ankle",
        ("foot.{s}",),
        "toe3-1.{s}",
        (
            _swing("dorsiflexion", "up", -45, 25, 5.0),
            _swing("eversion", "lateral", -15, 15, 3.0),
        ),
    ),
)

JOINT_BY_NAME: dict[str, Joint] = {j.name: j for j in JOINTS}


def joint_instances() -> list[tuple[str, Joint, str | None]]:
    """Every joint instance as ``(key, joint, side)``: ``pelvis``, ..., ``shoulder.L``, ``shoulder.R``, ..."""
    out: list[tuple[str, Joint, str | None]] = []
    for joint in JOINTS:
        if joint.sided:
            out.extend((f"{joint.name}.{s}", joint, s) for s in SIDES)
        else:
            out.append((joint.name, joint, None))
    return out


def dof_keys() -> list[str]:
    """Flat DOF names ``"<joint instance>:<dof>"`` in a fixed order (the columns of an angle vector)."""
    return [f"{key}:{dof.name}" for key, joint, _ in joint_instances() for dof in joint.dofs]


# ---------------------------------------------------------------------------------------------
# Key poses. Angles in degrees; "both" entries apply to .L and .R alike (anatomical, so mirrored).
# ---------------------------------------------------------------------------------------------
Angles = Mapping[str, Mapping[str, float]]


def both_sides(**joints: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """The same DOF values on the .L and .R instance of each named joint: ``both_sides(elbow={"flexion": 30})``."""
    out: dict[str, dict[str, float]] = {}
    for name, dofs in joints.items():
        for s in SIDES:
            out[f"{name}.{s}"] = dict(dofs)
    return out


def merge_poses(*parts: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Pose specs merged left to right (a later DOF value replaces an earlier one)."""
    out: dict[str, dict[str, float]] = {}
    for part in parts:
        for key, dofs in part.items():
            out.setdefault(key, {}).update(dofs)
    return out


_ARMS_DOWN = both_sides(shoulder={"abduction": -34.0}, elbow={"flexion": 5.0})

KEY_POSES: dict[str, dict[str, dict[str, float]]] = {
    "standing_a": {},
    "standing_relaxed": merge_poses(_ARMS_DOWN),
    "standing_weight_shift": merge_poses(
        _ARMS_DOWN,
        {
            "pelvis": {"lateral_bend": -4.0},
            "hip.L": {"abduction": 4.0},
            "hip.R": {"abduction": 0.0, "flexion": 8.0},
            "knee.R": {"flexion": 14.0},
            "ankle.R": {"dorsiflexion": -8.0},
            "spine": {"lateral_bend": 6.0},
        },
    ),
    "t_pose": both_sides(shoulder={"abduction": 48.0}, elbow={"flexion": -5.0}),
    "walking_left_forward": merge_poses(
        both_sides(shoulder={"abduction": -32.0}),
        {
            "hip.L": {"flexion": 25.0},
            "knee.L": {"flexion": 8.0},
            "ankle.L": {"dorsiflexion": 5.0},
            "hip.R": {"flexion": -15.0},
            "knee.R": {"flexion": 25.0},
            "ankle.R": {"dorsiflexion": -15.0},
            "shoulder.L": {"flexion": -20.0},
            "shoulder.R": {"flexion": 25.0},
            "elbow.L": {"flexion": 10.0},
            "elbow.R": {"flexion": 30.0},
            "spine": {"rotation": -6.0},
        },
    ),
    "walking_right_forward": merge_poses(
        both_sides(shoulder={"abduction": -32.0}),
        {
            "hip.R": {"flexion": 25.0},
            "knee.R": {"flexion": 8.0},
            "ankle.R": {"dorsiflexion": 5.0},
            "hip.L": {"flexion": -15.0},
            "knee.L": {"flexion": 25.0},
            "ankle.L": {"dorsiflexion": -15.0},
            "shoulder.R": {"flexion": -20.0},
            "shoulder.L": {"flexion": 25.0},
            "elbow.R": {"flexion": 10.0},
            "elbow.L": {"flexion": 30.0},
            "spine": {"rotation": 6.0},
        },
    ),
    "arms_raised": both_sides(
        clavicle={"elevation": 15.0}, shoulder={"abduction": 118.0}, elbow={"flexion": 10.0}
    ),
    "arms_forward": both_sides(
        shoulder={"flexion": 85.0, "abduction": -32.0}, elbow={"flexion": -5.0}
    ),
    "arms_crossed": both_sides(
        shoulder={"flexion": 32.0, "abduction": -25.0, "medial_rotation": 68.0},
        elbow={"flexion": 72.0},
    ),
    "crouching": merge_poses(
        both_sides(
            hip={"flexion": 95.0, "abduction": 18.0},
            knee={"flexion": 110.0},
            ankle={"dorsiflexion": 15.0},
            shoulder={"flexion": 50.0, "abduction": -25.0},
            elbow={"flexion": 20.0},
        ),
        {"pelvis": {"flexion": 20.0}, "spine": {"flexion": 20.0}, "neck": {"flexion": -15.0}},
    ),
    "sitting": merge_poses(
        both_sides(
            hip={"flexion": 88.0, "abduction": 5.0},
            knee={"flexion": 88.0},
            shoulder={"flexion": 20.0, "abduction": -30.0},
            elbow={"flexion": 50.0},
        ),
        {"spine": {"flexion": 8.0}},
    ),
    "reaching_up_left": merge_poses(
        both_sides(shoulder={"abduction": -30.0}),
        {
            "clavicle.L": {"elevation": 15.0},
            "shoulder.L": {"abduction": 125.0, "flexion": 10.0},
            "elbow.L": {"flexion": 0.0},
            "spine": {"lateral_bend": -8.0},
            "neck": {"flexion": -10.0, "lateral_bend": -8.0},
        },
    ),
    "reaching_forward_right": merge_poses(
        both_sides(shoulder={"abduction": -30.0}),
        {
            "shoulder.R": {"flexion": 80.0, "abduction": -20.0},
            "elbow.R": {"flexion": 0.0},
            "spine": {"flexion": 15.0, "rotation": 15.0},
            "clavicle.R": {"protraction": 15.0},
        },
    ),
    "bending_forward": merge_poses(
        both_sides(hip={"flexion": 35.0}, shoulder={"flexion": 40.0, "abduction": -30.0}),
        {"pelvis": {"flexion": 35.0}, "spine": {"flexion": 35.0}, "neck": {"flexion": 10.0}},
    ),
    "bending_side": merge_poses(
        _ARMS_DOWN,
        {"spine": {"lateral_bend": 22.0}, "neck": {"lateral_bend": 8.0}},
    ),
    "twisting": merge_poses(
        both_sides(shoulder={"abduction": -20.0, "flexion": 20.0}, elbow={"flexion": 60.0}),
        {"spine": {"rotation": 30.0}, "neck": {"rotation": 20.0}},
    ),
}

POSE_NAMES: tuple[str, ...] = tuple(KEY_POSES)


def key_pose_vector(name: str) -> np.ndarray:
    """The key pose ``name`` as a flat angle vector ``(n_dofs,) float64`` (degrees, order of :func:`dof_keys`)."""
    if name not in KEY_POSES:
        raise KeyError(f"unknown pose {name!r}; known poses: {', '.join(POSE_NAMES)}")
    return pose_vector(KEY_POSES[name], name)


def pose_vector(spec: Angles, name: str = "pose") -> np.ndarray:
    """A pose spec (``{joint instance: {dof: degrees}}``, unnamed DOFs 0) as ``(n_dofs,) float64`` (order of
    :func:`dof_keys`); ``name`` only labels the error for an unknown DOF."""
    keys = dof_keys()
    index = {k: i for i, k in enumerate(keys)}
    vec = np.zeros(len(keys), dtype=np.float64)
    for joint_key, dofs in spec.items():
        for dof, value in dofs.items():
            flat = f"{joint_key}:{dof}"
            if flat not in index:
                raise KeyError(f"pose {name!r}: unknown DOF {flat!r}")
            vec[index[flat]] = value
    return vec


def mirror_pose(spec: Angles) -> dict[str, dict[str, float]]:
    """The mirror image of a pose spec (left and right swapped): sided joints trade values, and the trunk's DOFs
    that turn towards the subject's left (lateral bend, rotation) change sign; every other DOF is anatomical
    (lateral, medial, anterior, posterior, up, down) and keeps its value. Raises KeyError for an unknown joint."""
    swap = {"L": "R", "R": "L"}
    out: dict[str, dict[str, float]] = {}
    for key, dofs in spec.items():
        name, _, side = key.partition(".")
        if side:
            out[f"{name}.{swap[side]}"] = dict(dofs)
        else:
            toward_left = {d.name for d in JOINT_BY_NAME[name].dofs if d.toward == "left"}
            out[key] = {d: (-v if d in toward_left else v) for d, v in dofs.items()}
    return out


def dof_limits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, sigma) per DOF, each ``(n_dofs,) float64`` degrees, order of :func:`dof_keys`."""
    lo, hi, sig = [], [], []
    for _, joint, _ in joint_instances():
        for dof in joint.dofs:
            lo.append(dof.limits[0])
            hi.append(dof.limits[1])
            sig.append(dof.sigma)
    return np.asarray(lo, float), np.asarray(hi, float), np.asarray(sig, float)


def perturb(key: np.ndarray, rng: np.random.Generator, jitter: float = 1.0) -> np.ndarray:
    """Key pose angles plus Gaussian noise (``sigma * jitter`` per DOF), clipped to the joint limits.

    key : (n_dofs,) float64 degrees. Returns (n_dofs,) float64. Draws exactly ``n_dofs`` normals
    from ``rng`` whatever ``jitter`` is, so the stream stays aligned.
    """
    lo, hi, sig = dof_limits()
    noise = rng.standard_normal(key.shape[0])
    return np.clip(key + noise * sig * float(jitter), lo, hi)


@dataclass
class PoseRig:
    """Turns anatomical angle vectors into anny ``local-ref`` pose parameters for one anny rig.

    bone_labels : anny bone names (``model.bone_labels``).
    axes : per DOF the (bone index list, unit axes (k, 3) float64) it rotates about.
    """

    bone_labels: list[str]
    dof_bones: list[np.ndarray] = field(default_factory=list)  # per DOF: (k,) int64 bone ids
    dof_axes: list[np.ndarray] = field(default_factory=list)  # per DOF: (k, 3) float64 unit axes
    dof_share: list[float] = field(default_factory=list)  # per DOF: 1 / number of bones sharing it

    @classmethod
    def from_reference(cls, bone_labels: list[str], bone_heads: np.ndarray) -> "PoseRig":
        """Build from the bone heads at the reference pose, ``(n_bones, 3) float64`` (z-up, facing -y)."""
        labels = list(bone_labels)
        index = {b: i for i, b in enumerate(labels)}
        directions = {
            "anterior": ANTERIOR,
            "posterior": POSTERIOR,
            "left": LEFT,
            "right": RIGHT,
            "up": UP,
            "down": DOWN,
        }
        rig = cls(labels)
        for _, joint, side in joint_instances():
            bones = [b.format(s=side) for b in joint.bones]
            missing = [b for b in bones if b not in index]
            if missing:
                raise ValueError(f"anny rig lacks bones {missing} needed by joint {joint.name}")
            distal = joint.distal.format(s=side) if side else joint.distal
            if distal in directions:
                along = np.repeat(directions[distal][None], len(bones), axis=0)
            else:
                # The whole joint chain shares one direction: first bone head to distal head.
                d = bone_heads[index[distal]] - bone_heads[index[bones[0]]]
                along = np.repeat((d / np.linalg.norm(d))[None], len(bones), axis=0)
            for dof in joint.dofs:
                target = dof.toward
                if target in ("lateral", "medial"):
                    lateral = LEFT if side == "L" else RIGHT
                    vec = lateral if target == "lateral" else -lateral
                else:
                    vec = directions[target]
                if dof.kind == "twist":
                    # Positive twist moves the front (anterior) towards ``vec``: axis +-along.
                    sign = np.sign(np.cross(along[0], ANTERIOR) @ vec) or 1.0
                    axes = along * sign
                elif dof.body_axis is not None:
                    fixed = np.eye(3)[{"x": 0, "y": 1, "z": 2}[dof.body_axis]]
                    sign = np.sign(np.cross(fixed, along[0]) @ vec)
                    if sign == 0:
                        raise ValueError(f"joint {joint.name}: DOF {dof.name} cannot move towards {target}")
                    axes = np.repeat((fixed * sign)[None], len(bones), axis=0)
                else:
                    axes = np.cross(along, vec)
                    norms = np.linalg.norm(axes, axis=1, keepdims=True)
                    if np.any(norms < 1e-3):
                        raise ValueError(f"joint {joint.name}: DOF {dof.name} axis is degenerate")
                    axes = axes / norms
                rig.dof_bones.append(np.array([index[b] for b in bones], dtype=np.int64))
                rig.dof_axes.append(axes)
                rig.dof_share.append(1.0 / len(bones))
        return rig

    def rotations(self, angles_deg: np.ndarray) -> np.ndarray:
        """Per-bone rotations for a batch of angle vectors.

        angles_deg : (B, n_dofs) float64 degrees. Returns (B, n_bones, 3, 3) float64; a bone's
        rotation is the product of its DOF rotations, the last DOF applied first (DOF order).
        """
        angles = np.atleast_2d(np.asarray(angles_deg, dtype=np.float64))
        batch = angles.shape[0]
        out = np.broadcast_to(np.eye(3), (batch, len(self.bone_labels), 3, 3)).copy()
        # Compose right to left so the twist (listed last) acts first on the bone.
        for d in range(len(self.dof_bones) - 1, -1, -1):
            bones, axes = self.dof_bones[d], self.dof_axes[d]
            theta = np.deg2rad(angles[:, d]) * self.dof_share[d]  # (B,)
            rot = axis_angle_matrix(axes[None, :, :], theta[:, None])  # (B, k, 3, 3)
            out[:, bones] = rot @ out[:, bones]
        return out

    def pose_parameters(self, angles_deg: np.ndarray) -> np.ndarray:
        """anny ``local-ref`` pose parameters ``(B, n_bones, 4, 4) float64`` for ``(B, n_dofs)`` angles."""
        rot = self.rotations(angles_deg)
        out = np.zeros(rot.shape[:2] + (4, 4), dtype=np.float64)
        out[..., :3, :3] = rot
        out[..., 3, 3] = 1.0
        return out


# A few far-apart raw poses (bone label -> axis-angle, radians), beyond the key-pose library's limits on purpose:
# ACAP tests and benchmarks use them to reach rotations past pi (the 2 pi consistency cases).
FAR_POSES: list[dict[str, list[float]]] = [
    {"root": [0.0, 0.0, 0.0]},
    {"upperarm01.L": [0, 0, 0.9], "lowerarm01.L": [0, 1.0, 0], "upperleg01.R": [0.7, 0, 0],
     "lowerleg01.R": [-0.9, 0, 0], "spine02": [0, 0.3, 0.2], "neck01": [0.2, 0, 0.4]},
    {"upperarm01.R": [0, 0, -0.9], "lowerarm01.R": [0, -1.0, 0], "upperleg01.L": [-0.5, 0.2, 0],
     "lowerleg01.L": [-1.0, 0, 0], "spine03": [0.2, -0.3, 0], "root": [0, 0, 2.8]},
    {"upperarm01.L": [0.6, 0.6, 0.2], "upperarm01.R": [-0.6, 0.6, 0.2], "lowerarm01.L": [0, 1.2, 0],
     "lowerarm01.R": [0, -1.2, 0], "root": [0, 0, -2.9], "head": [0, 0.5, 0]},
]


def pose_axis_angles(model, poses) -> np.ndarray:
    """(B, n, 3) float64 vertices of the anny ``model`` in each pose (dict bone label -> axis-angle, radians,
    anny's own pose parameterisation); bones not named keep their reference orientation."""
    import torch

    from scipy.spatial.transform import Rotation

    out = []
    for pose in poses:
        params = {}
        for bone, aa in pose.items():
            m = np.eye(4)
            m[:3, :3] = Rotation.from_rotvec(np.asarray(aa, dtype=np.float64)).as_matrix()
            params[bone] = torch.as_tensor(m[None])
        with torch.no_grad():
            out.append(model(pose_parameters=params)["vertices"][0].double().numpy())
    return np.stack(out)

