"""Read a FAUST pose off its training registrations as anny joint angles (how ``bodydata/bodyfit/scan_poses.py`` was made).

Usage::

    python tools/scan_pose_angles.py --faust ../shared/data/faust --pose 7 --base standing_relaxed \
        --dofs shoulder.L:flexion,shoulder.L:abduction,elbow.L:flexion,hip.R:medial_rotation [--bounded]

FAUST registration ``tr_reg_0{s}{pose}`` is subject ``s`` (0-7) in pose ``pose`` (0-9). Each body is put in a frame
of its own torso (origin between the shoulders, x to the subject's left, y forward, z up along the hips-to-shoulders
line), and the shipped SMPL landmarks there are averaged over the eight subjects. anny's average body, posed by the
``--base`` key pose with the ``--dofs`` free, is put in the same frame from its own landmarks, and the free angles are
fitted (Powell) to bring its landmarks onto the average: shoulders, hips, elbows, wrists, middle fingertips, knees,
ankles, heels. ``--bounded`` keeps them inside the library's joint limits. Prints the landmark distances (cm) before
and after, and the fitted angles (degrees) to round into a pose spec.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

USED = ("shoulder_L", "shoulder_R", "hip_L", "hip_R", "elbow_L", "wrist_L", "middle_fingertip_L", "elbow_R", "wrist_R",
        "middle_fingertip_R", "knee_R", "knee_L", "ankle_R", "ankle_L", "heel_R", "heel_L")


def torso_frame(points: dict[str, np.ndarray]) -> np.ndarray:
    """Landmark name -> (3,) position; returns (len(USED), 3) the used landmarks in the torso frame (metres)."""
    left = points["shoulder_L"] - points["shoulder_R"]
    left = left / np.linalg.norm(left)
    origin = (points["shoulder_L"] + points["shoulder_R"]) / 2.0
    up = origin - (points["hip_L"] + points["hip_R"]) / 2.0
    up = up - left * (up @ left)
    up = up / np.linalg.norm(up)
    forward = np.cross(up, left)
    if (points["nose_tip"] - origin) @ forward < 0.0:
        forward = -forward
    axes = np.stack([left, forward, up])
    return np.stack([axes @ (points[n] - origin) for n in USED])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faust", type=Path, required=True, help="FAUST folder with registrations/")
    ap.add_argument("--pose", type=int, required=True, choices=range(10))
    ap.add_argument("--base", default="standing_relaxed", help="key pose of bodydata.generator.poses to start from")
    ap.add_argument("--dofs", required=True, help="comma-separated DOFs to fit, e.g. shoulder.L:flexion,elbow.L:flexion")
    ap.add_argument("--bounded", action="store_true", help="keep the fitted angles inside the joint limits")
    args = ap.parse_args()

    import torch
    from scipy.optimize import minimize

    from bodydata.bodyfit.body import AnnyBody
    from bodydata.generator.poses import dof_keys, dof_limits, key_pose_vector
    from bodydata.mesh import read_mesh
    from bodydata.templates.landmarks import load_landmarks

    smpl, anny = load_landmarks("smpl_6890"), load_landmarks("anny_notoes")
    target = np.mean([
        torso_frame({n: v[i] for n, i in smpl.items()})
        for v in (read_mesh(args.faust / "registrations" / f"tr_reg_0{s}{args.pose}.ply").vertices for s in range(8))
    ], axis=0)
    body = AnnyBody("notoes")
    keys = dof_keys()
    free = args.dofs.split(",")
    unknown = [d for d in free if d not in keys]
    if unknown:
        raise SystemExit(f"unknown DOFs {unknown}")
    idx = np.array([keys.index(d) for d in free])
    start = key_pose_vector(args.base)
    lo, hi, _ = dof_limits()

    def landmarks(x: np.ndarray) -> np.ndarray:
        a = start.copy()
        a[idx] = x
        with torch.no_grad():
            v = body(body.params(1, angles=a[None])).posed[0].cpu().numpy()
        return torso_frame({n: v[i] for n, i in anny.items()})

    x0 = np.clip(start[idx], lo[idx], hi[idx]) if args.bounded else start[idx]
    res = minimize(lambda x: float(((landmarks(x) - target) ** 2).sum()), x0, method="Powell",
                   bounds=list(zip(lo[idx], hi[idx])) if args.bounded else None,
                   options={"maxiter": 4000, "xtol": 0.5, "ftol": 1e-6})
    for label, x in (("start", x0), ("fitted", res.x)):
        d = 100.0 * np.linalg.norm(landmarks(x) - target, axis=1)
        print(f"{label:6s} landmark distance (cm): " + ", ".join(f"{n} {e:.0f}" for n, e in zip(USED, d)))
    print("angles (degrees): " + ", ".join(f"{k} {v:.0f}" for k, v in zip(free, res.x)))


if __name__ == "__main__":
    main()
