"""``bodydata fit-joints``'s work: 2D-joint files -> Eq. 16 fits -> fitted meshes, codes, 3D joints and a CSV.

Input: one JSON file, or a folder of them (``*.json``, natural order), each::

    {"joints": {"pelvis": [x, y], "neck": [x, y], ...},   pixels; names from JOINT_NAMES; absent or null = not seen
     "focal": 1000.0, "center": [cx, cy]}                 the camera (optional when given on the command line)

(``"joints"`` may also be a list of ``[x, y]`` or null in :data:`~bodydata.templates.joints.JOINT_NAMES` order.)

Output layout (``OUT``)::

    OUT/meshes/<name>.ply      the fitted mesh in the camera frame (metres; x right, y down, z forward)
    OUT/codes/<name>.npz       z (L,) float32 (shape, pose for a disentangled model), rotation (3, 3), translation (3,),
                               joints3d (J, 3) camera frame, joints2d (J, 2) their projections (px)
    OUT/fit_joints.csv         one row per input file (``JOINTS_COLUMNS``), failures with their reason
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from bodydata.errors import BodydataError
from bodydata.evaluate.fit import FitError
from bodydata.evaluate.fit_files import FitRunReport, _failed
from bodydata.evaluate.fit_joints2d import Camera, Joints2dFitter, Joints2dResult, Joints2dSettings
from bodydata.fsutil import atomic_path, atomic_write_csv
from bodydata.manifest.status import STATUS_DONE, is_done

__all__ = ["JOINTS_FILES", "JOINTS_COLUMNS", "read_joints2d_file", "fit_joint_files"]

JOINTS_FILES = {"meshes": "meshes", "codes": "codes", "table": "fit_joints.csv"}
JOINTS_COLUMNS = ["name", "path", "status", "joints_seen", "reprojection_px", "energy", "facing", "bend_elbow_L_deg",
                  "bend_elbow_R_deg", "bend_knee_L_deg", "bend_knee_R_deg", "focal", "cx", "cy", "seconds", "reason"]


def read_joints2d_file(path: str | os.PathLike) -> tuple[np.ndarray, Camera | None]:
    """One 2D-joint JSON file (module docstring) -> (J, 2) float64 pixels (NaN = not seen) and its camera or None.

    Raises FitError naming the file for unreadable JSON, unknown joint names or malformed coordinates."""
    from bodydata.templates.joints import JOINT_NAMES

    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FitError(f"{path}: not a readable JSON file ({' '.join(str(exc).split())})") from None
    if not isinstance(doc, dict) or "joints" not in doc:
        raise FitError(f"{path}: expected an object with 'joints'")
    joints = doc["joints"]
    if isinstance(joints, list):
        if len(joints) != len(JOINT_NAMES):
            raise FitError(f"{path}: 'joints' lists {len(joints)} points, expected {len(JOINT_NAMES)} "
                           f"({', '.join(JOINT_NAMES)})")
        joints = dict(zip(JOINT_NAMES, joints))
    if not isinstance(joints, dict):
        raise FitError(f"{path}: 'joints' must be an object (name -> [x, y]) or a list")
    unknown = sorted(set(joints) - set(JOINT_NAMES))
    if unknown:
        raise FitError(f"{path}: unknown joint names {unknown} (known: {', '.join(JOINT_NAMES)})")
    out = np.full((len(JOINT_NAMES), 2), np.nan)
    for i, name in enumerate(JOINT_NAMES):
        xy = joints.get(name)
        if xy is None:
            continue
        try:
            out[i] = np.asarray(xy, np.float64).reshape(2)
        except (TypeError, ValueError):
            raise FitError(f"{path}: joint {name} is {xy!r}, expected [x, y] pixels or null") from None
    camera = None
    if "focal" in doc or "center" in doc:
        try:
            camera = Camera(float(doc["focal"]), tuple(float(c) for c in doc["center"]))
        except (KeyError, TypeError, ValueError):
            raise FitError(f"{path}: a camera needs both 'focal' (pixels) and 'center' [cx, cy]") from None
        except FitError as exc:
            raise FitError(f"{path}: {exc}") from None
    return out, camera


def _inputs(joints2d: str | os.PathLike) -> list[Path]:
    from bodydata.naming import natural_key

    src = Path(joints2d)
    if src.is_dir():
        paths = sorted(src.glob("*.json"), key=lambda p: natural_key(p.name))
        if not paths:
            raise BodydataError(f"{src}: no .json files of 2D joints")
        return paths
    if not src.is_file():
        raise BodydataError(f"{src}: no such file or folder")
    return [src]


def _save(path: Path, res: Joints2dResult, i: int) -> None:
    arrays = {"z": res.z[i], "rotation": res.rotation[i], "translation": res.translation[i],
              "joints3d": res.joints3d[i], "joints2d": res.joints2d[i]}
    if res.shape is not None:
        arrays.update(shape=res.shape[i], pose=res.pose[i])
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def fit_joint_files(run: str | os.PathLike, joints2d: str | os.PathLike, out: str | os.PathLike,
                    camera: Camera | None = None, settings: Joints2dSettings = Joints2dSettings(),
                    device: str | None = None, checkpoint: str = "last") -> FitRunReport:
    """Fit RUN's model (Eq. 16) to every 2D-joint file of ``joints2d`` (a JSON file or a folder); write ``out``.

    camera : used for every file (overrides a file's own); None: each file must carry its camera. Files sharing a
    camera are fitted as one batch. A bad file is a failed row; the others go on. Raises BodydataError when it
    cannot start (no inputs, no run, a model without joint sets)."""
    from bodydata.mesh import write_mesh
    from bodydata.model import load

    paths = _inputs(joints2d)
    model = load(run, checkpoint=checkpoint, device=device)
    if not model.template:
        raise FitError(f"{run}: the run records no template, so it has no joints to fit")
    out = Path(out)
    report = FitRunReport(out)
    rows: dict[str, dict[str, str]] = {}
    batches: dict[Camera, list[tuple[str, Path, np.ndarray]]] = {}
    for k, p in enumerate(paths):
        name = p.stem
        if name in rows:
            rows[f"{name}#{k}"] = _failed(name, p, f"{p}: another input has the same name {name!r}")
            continue
        try:
            joints, cam = read_joints2d_file(p)
            cam = camera or cam
            if cam is None:
                raise FitError(f"{p}: no camera (give --focal and --center, or 'focal' and 'center' in the file)")
            if np.isfinite(joints).all(1).sum() < 3:
                raise FitError(f"{p}: fewer than 3 joints seen")
        except BodydataError as exc:
            rows[name] = _failed(name, p, str(exc))
            continue
        rows[name] = {}
        batches.setdefault(cam, []).append((name, p, joints))
    fitters: dict[Camera, Joints2dFitter] = {}
    faces = None
    for cam, items in batches.items():
        fitter = fitters.setdefault(cam, Joints2dFitter(model, cam, settings))
        faces = fitter.template.faces
        res = fitter.fit(np.stack([j for _, _, j in items]))
        for i, (name, p, joints) in enumerate(items):
            write_mesh(out / JOINTS_FILES["meshes"] / f"{name}.ply", res.vertices[i], faces)
            _save(out / JOINTS_FILES["codes"] / f"{name}.npz", res, i)
            bend = {f"bend_{n}_deg": f"{a:.2f}" for n, a in zip(("elbow_L", "elbow_R", "knee_L", "knee_R"),
                                                                res.bend_deg[i])}
            rows[name] = {"name": name, "path": str(p), "status": STATUS_DONE,
                          "joints_seen": str(int(np.isfinite(joints).all(1).sum())),
                          "reprojection_px": f"{res.reprojection_px[i]:.3f}", "energy": f"{res.energy[i]:.4g}",
                          "facing": "away" if res.flipped[i] else "camera", **bend, "focal": f"{cam.focal:g}",
                          "cx": f"{cam.center[0]:g}", "cy": f"{cam.center[1]:g}", "seconds": f"{res.seconds[i]:.3f}",
                          "reason": ""}
    report.rows = list(rows.values())
    report.n_done = sum(is_done(r["status"]) for r in report.rows)
    report.n_failed = len(report.rows) - report.n_done
    atomic_write_csv(out / JOINTS_FILES["table"], JOINTS_COLUMNS, report.rows)
    return report
