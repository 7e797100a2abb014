"""Benchmark: 3D pose from 2D joints (Eq. 16) on posed anny bodies seen by a known camera, where the true 3D joints are known.

Test bodies: ``--identities x --poses`` posed anny-lite bodies from the generator (seed ``--seed``, identities
numbered from 1000 so that they are not a training set's), their 16 joints (vertex-set averages,
bodydata.templates.joints), each body turned by a random yaw in [-45°, 45°] about its up axis, set 3.0-4.0 m in front
of a pinhole camera (focal 1000 px, principal point (500, 500)) and projected: exact 2D joints. Each set is fitted
from zero codes (Eq. 16, the paper's weights) and the fitted 3D joints are compared with the truth after Procrustes
(rotation, translation, scale; the paper's Table 6 measure, mm). For context it also prints the same error for the
prior's mean body (zero codes) and for the best this model can do given the whole true mesh (the Eq. 15 fit of the
true mesh's vertices, then its joints).

    python benchmarks/bench_joints2d.py --run RUN [--identities 4] [--poses 4] [--iterations 300] [--bend-weight 400]
        [--device cpu]

Without --run it trains a small dhnn on anny-lite (--train-identities x --train-poses bodies, --epochs) in a
temporary folder first.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def small_run(root: Path, identities: int, poses: int, epochs: int) -> Path:
    from bodydata.dataset.build import build_dataset
    from bodydata.generator.synth import run_synth
    from bodydata.sources.scan import scan_source
    from bodydata.train.trainer import train

    synth = run_synth(root / "synth", identities, poses, seed=5, topology="notoes_collapse10pc", sheet=False,
                      progress=False)
    scan_source("anny", synth.out_dir, root / "anny.csv", progress=False)
    build_dataset([root / "anny.csv"], "anny-lite", root / "ds", split="subject", n_test_neutral=1,
                  n_test_pose=poses, seed=0, progress=False)
    train(root / "ds", root / "run", epochs=epochs, progress=False)
    return root / "run"


def main() -> None:
    import torch

    from bodydata.evaluate.fit import FitSettings, MeshFitter
    from bodydata.evaluate.fit_joints2d import FACING_CAMERA, Camera, Joints2dFitter, Joints2dSettings, project
    from bodydata.evaluate.metrics import procrustes_joint_error_mm
    from bodydata.generator.bodies import anny_bodies
    from bodydata.mesh.rotations import axis_angle_matrix
    from bodydata.model import load

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run")
    ap.add_argument("--identities", type=int, default=4)
    ap.add_argument("--poses", type=int, default=4)
    ap.add_argument("--seed", type=int, default=77)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--bend-weight", type=float, default=400.0, help="λ_g (0: no bending penalty, for comparison)")
    ap.add_argument("--train-identities", type=int, default=12)
    ap.add_argument("--train-poses", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    tmp = None
    if not args.run:
        tmp = tempfile.TemporaryDirectory()
        t = time.perf_counter()
        args.run = small_run(Path(tmp.name), args.train_identities, args.train_poses, args.epochs)
        print(f"trained a dhnn on {args.train_identities} x {args.train_poses} anny-lite bodies, {args.epochs} epochs, "
              f"in {time.perf_counter() - t:.0f} s")
    model = load(args.run, device=args.device)
    camera = Camera(1000.0, (500.0, 500.0))
    settings = Joints2dSettings(iterations=args.iterations, bend_weight=args.bend_weight)
    fitter = Joints2dFitter(model, camera, settings)
    bodies = anny_bodies("notoes_collapse10pc", args.identities, args.poses, seed=args.seed, first_identity=1000)
    v = bodies.vertices["notoes_collapse10pc"]
    truth = fitter.joints(torch.as_tensor(v)).numpy()  # (B, J, 3) body frame
    rng = np.random.default_rng(args.seed)
    yaw = np.radians(rng.uniform(-45.0, 45.0, len(v)))
    rot = np.stack([FACING_CAMERA @ axis_angle_matrix(np.array([0.0, 0.0, 1.0]), np.array(a)) for a in yaw])
    trans = np.column_stack([rng.uniform(-0.3, 0.3, len(v)), rng.uniform(-0.2, 0.2, len(v)),
                             rng.uniform(3.0, 4.0, len(v))])
    px = project(torch.as_tensor(truth @ rot.transpose(0, 2, 1) + trans[:, None]), camera).numpy()
    print(f"run {args.run} ({model.net.arch}), {len(v)} test bodies ({args.identities} identities x {args.poses} "
          f"poses, generator seed {args.seed}), 16 joints, camera f = 1000 px, device {args.device}, "
          f"torch threads {torch.get_num_threads()}")
    t = time.perf_counter()
    res = fitter.fit(px)
    sec = (time.perf_counter() - t) / len(v)
    err = procrustes_joint_error_mm(res.joints3d, truth)
    with torch.no_grad():
        mean_body = fitter.joints(fitter.decode(torch.zeros(1, fitter.n_latent, device=fitter.device))[0]).cpu().numpy()
    err_mean = procrustes_joint_error_mm(np.repeat(mean_body, len(v), 0), truth)
    mesh_fit = MeshFitter(model, FitSettings()).fit(v)
    err_best = procrustes_joint_error_mm(fitter.joints(torch.as_tensor(mesh_fit.vertices)).numpy(), truth)
    print(f"  Eq. 16 fit ({settings.rigid_iterations} + {settings.iterations} Adam steps, both facings, "
          f"λ_g = {settings.bend_weight:g}): "
          f"{sec:.2f} s per body, reprojection {np.mean(res.reprojection_px):.2f} px mean, "
          f"{int(res.flipped.sum())} ended facing away")
    print(f"  3D joint error after Procrustes (mm): mean {err.mean():.1f}, median {np.median(err):.1f}, "
          f"max {err.max():.1f}")
    print(f"  context: the prior's mean body {err_mean.mean():.1f} mm; the Eq. 15 fit to the whole true mesh "
          f"{err_best.mean():.1f} mm (MED {mesh_fit.med_mm.mean():.2f} mm)")
    print(f"  bend angles of the fits (deg, elbows L R, knees L R), min over bodies: "
          f"{', '.join(f'{x:.0f}' for x in res.bend_deg.min(0))}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
