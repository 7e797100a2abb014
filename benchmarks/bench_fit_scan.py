"""Benchmark: scan fitting (``bodydata fit --target-kind scan``) on remeshed anny-lite bodies with a known answer:
PMD (scan point -> fitted mesh, without / with the hands) and MED to the true body after the fit, seconds per scan.

    python benchmarks/bench_fit_scan.py [--run RUN --dataset DS] [--bodies 4] [--iterations 200] [--device cpu]

Each body is remeshed into another connectivity (jittered subdivision, shuffled order, ~4x the vertices), moved by a
known rigid motion and given the landmarks of the nearest remeshed vertices; then fitted as (a) a mesh, (b) a point
cloud (the same points, no faces: PCA normals) and (c) a virtual scan: the point cloud without its back half (the
points behind the body's centroid along the template's front axis). Bodies: codes decoded by the model ("in span":
the best possible MED is 0, so what remains is the fit's own error) and the dataset's test meshes (anny bodies: the
model's own reconstruction error is included; the Eq. 15 fit of the same mesh in the template's connectivity, with
known correspondences, is printed as the floor), from the train split (bodies the model has seen) and the test split. Without --run/--dataset it trains the tiny dhnn of
``bench_fit.py`` (4 identities x 3 poses, 30 epochs) in a temporary folder first.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _subset(points, faces, landmarks, keep):
    """Points (m, 3) / faces / {name: id} restricted to the points where keep (m,) is True."""
    new = np.full(len(points), -1)
    new[keep] = np.arange(int(keep.sum()))
    f = faces[np.all(keep[faces], 1)] if faces is not None and len(faces) else None
    lm = {k: int(new[i]) for k, i in landmarks.items() if keep[i]}
    return points[keep], (None if f is None else new[f]), lm


def main() -> None:
    import torch
    from bench_fit import tiny_run

    from bodydata.evaluate.fit import FitSettings, MeshFitter
    from bodydata.evaluate.fit_scan import (
        ScanFitSettings,
        ScanFitter,
        ScanTarget,
        point_to_mesh_mm,
    )
    from bodydata.evaluate.reconstruction import load_test_meshes
    from bodydata.features.polar import rotation_exp_torch
    from bodydata.model import load
    from bodydata.registration.remesh import remesh_body
    from bodydata.templates.template import axis_vector

    ap = argparse.ArgumentParser()
    ap.add_argument("--run")
    ap.add_argument("--dataset")
    ap.add_argument("--bodies", type=int, default=4, help="bodies of each kind (decoded, train, test meshes)")
    ap.add_argument("--iterations", type=int, default=200, help="Adam steps in all, over the 5 ICP rounds")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    tmp = None
    if not (args.run and args.dataset):
        tmp = tempfile.TemporaryDirectory()
        args.run, args.dataset = tiny_run(Path(tmp.name))
    model = load(args.run, device=args.device)
    settings = ScanFitSettings(round_iterations=max(1, args.iterations // 5))
    fitter = ScanFitter(model, settings)
    tpl = fitter.template
    rng = np.random.default_rng(0)
    z = 0.5 * torch.as_tensor(rng.standard_normal((args.bodies, fitter.mesh.n_latent)), dtype=torch.float32)
    with torch.no_grad():
        decoded = fitter.mesh.decode_vertices(z.to(fitter.device)).cpu().numpy()
    print(f"run {args.run} ({model.net.arch}), template {tpl.name} ({tpl.n_vertices} vertices), device {args.device}, "
          f"torch threads {torch.get_num_threads()}, {settings.iterations} Adam steps per fit")
    sets = {"decoded": decoded}
    for split in ("train", "test"):
        meshes = load_test_meshes(args.dataset, split)
        sets[split] = np.concatenate([m.vertices for m in meshes.values()])[:: max(1, sum(
            len(m.vertices) for m in meshes.values()) // args.bodies)][: args.bodies]
        floor = MeshFitter(model, FitSettings()).fit(sets[split]).med_mm
        print(f"Eq. 15 on these {split} meshes in the template's connectivity (known correspondences): MED "
              f"{floor.mean():.2f} mm (the floor of the {split} rows)")
    front = axis_vector(tpl.front_axis)
    print(f"{'bodies':<9}{'target':<13}{'points':>7}{'start MED':>11}{'MED':>8}{'PMD':>8}{'PMD wh':>8}{'p95':>7}"
          f"{'rot deg':>9}{'s/scan':>8}{'cpu s':>7}")
    batch: list = []
    for kind, bodies in sets.items():
        stats: dict[str, list] = {}
        for b, v in enumerate(bodies):
            rot = rotation_exp_torch(torch.as_tensor(rng.normal(0, 0.3, (1, 3))))[0].numpy()
            t = rng.normal(0, 0.2, 3)
            rb = remesh_body(v, tpl.faces, tpl.landmarks, seed=b)
            pts = rb.vertices @ rot.T + t
            behind = (pts - pts.mean(0)) @ (rot @ front) < 0
            cases = {"mesh": (pts, rb.faces, rb.landmarks), "point cloud": (pts, None, rb.landmarks),
                     "front half": _subset(pts, None, rb.landmarks, ~behind)}
            truth = v @ rot.T + t
            for name, (p, f, lm) in cases.items():
                tg = ScanTarget(f"{kind}{b}", p, f, lm)
                if name == "mesh":
                    batch.append(tg)
                t0, c0 = time.perf_counter(), time.process_time()
                res = fitter.fit([tg])
                sec, cpu = time.perf_counter() - t0, time.process_time() - c0
                start = 1000 * np.linalg.norm(res.start[0].apply(fitter.reference_np) - truth, axis=1).mean()
                med = 1000 * np.linalg.norm(res.vertices[0] - truth, axis=1).mean()
                d = point_to_mesh_mm(p, res.vertices[0], tpl.faces, tpl.part_labels, tpl.part_names).summary()
                ang = np.degrees(np.arccos(np.clip((np.trace(res.rotation[0].T @ rot) - 1) / 2, -1, 1)))
                stats.setdefault(name, []).append((len(p), start, med, d["pmd_mm"], d["pmd_wh_mm"], d["pmd_p95_mm"],
                                                   ang, sec, cpu))
        for name, rows in stats.items():
            m = np.mean(np.array(rows), 0)
            print(f"{kind:<9}{name:<13}{m[0]:>7.0f}{m[1]:>11.1f}{m[2]:>8.2f}{m[3]:>8.2f}{m[4]:>8.2f}{m[5]:>7.2f}"
                  f"{m[6]:>9.2f}{m[7]:>8.2f}{m[8]:>7.2f}")
    t0, c0 = time.perf_counter(), time.process_time()
    fitter.fit(batch)
    print(f"the {len(batch)} mesh scans as one batch: {(time.perf_counter() - t0) / len(batch):.2f} s per scan "
          f"({(time.process_time() - c0) / len(batch):.2f} s CPU)")
    print("means over the bodies; MED and start MED (the landmark start) in mm to the true body in the scan's frame; "
          "PMD without the hands (the paper's), PMD wh with them, p95 of PMD; rot deg: fitted vs true rotation; "
          "s/scan wall time, cpu s the process's CPU time (a shared machine's wall time varies)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
