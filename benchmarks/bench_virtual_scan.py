"""Virtual scans of anny bodies and FAUST registrations: points, holes, seconds per body, distance to the true surface.

    python benchmarks/bench_virtual_scan.py [--anny 3] [--faust 3] [--points 200000] [--noise-mm 1.0] [--json OUT]

Per body: scan points (body / floor), hole fraction (hits lost at grazing incidence), seconds per scan (numpy
ray casting, and open3d's when it imports), and the distance of the body's scan points to the true surface (closest
point on the scanned mesh, mm) next to what the noise model predicts for those very points: each point moves by
N(0, sigma) along its ray, i.e. by |N(0, sigma)| * cos(incidence) off a locally flat surface (p95 by sampling).
FAUST registrations come from ``$BODYDATA_SHARED_DATA/faust/registrations`` (default ../shared/data), y up;
anny bodies from the generator (``notoes``, 12,272 vertices, z up).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def _bodies(n_anny: int, n_faust: int):
    """(name, vertices, faces, up_axis) of the bodies to scan."""
    from bodydata.generator.bodies import anny_bodies

    out = []
    if n_anny:
        b = anny_bodies("notoes", n_anny, 1, seed=3)
        out += [(f"anny/{name}", v, b.faces["notoes"], "+z") for name, v in zip(b.names, b.vertices["notoes"])]
    root = Path(os.environ.get("BODYDATA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    regs = sorted((root / "faust" / "registrations").glob("tr_reg_*.ply"))[:n_faust]
    if n_faust and not regs:
        print(f"(no FAUST registrations under {root}/faust/registrations: skipped)")
    from bodydata.mesh import read_mesh

    for p in regs:
        m = read_mesh(p)
        out.append((f"faust/{p.stem}", m.vertices, m.faces, "+y"))
    return out


def measure(name, v, f, up, args, open3d: bool) -> dict:
    from bodydata.mesh.closest import point_to_mesh
    from bodydata.mesh.normals import face_normals
    from bodydata.mesh.scanner import ScannerConfig, virtual_scan

    cfg = ScannerConfig(n_points=args.points, noise_mm=args.noise_mm, up_axis=up, seed=0)
    t0 = time.perf_counter()
    s = virtual_scan(v, f, cfg)
    sec = time.perf_counter() - t0
    body = s.on_body
    d = 1000 * point_to_mesh(s.points[body], v, f)
    ray = s.surface[body] - s.sensors[s.sensor[body]]
    ray /= np.linalg.norm(ray, axis=1, keepdims=True)
    cos_inc = np.abs((face_normals(v, f)[s.face[body]] * ray).sum(1))
    scale = 1000 * s.noise_sigma[body] * cos_inc
    model = np.abs(np.random.default_rng(1).standard_normal((8, len(scale)))) * scale
    row = dict(body=name, points=len(s.points), body_points=int(body.sum()), floor_fraction=float(1 - body.mean()),
               hole_fraction=s.hole_fraction, seconds=sec, mean_mm=float(d.mean()), p95_mm=float(np.percentile(d, 95)),
               model_mean_mm=float(scale.mean() * np.sqrt(2 / np.pi)), model_p95_mm=float(np.percentile(model, 95)))
    if open3d:
        t0 = time.perf_counter()
        o = virtual_scan(v, f, ScannerConfig(n_points=args.points, noise_mm=args.noise_mm, up_axis=up, seed=0,
                                             backend="open3d"))
        row["seconds_open3d"] = time.perf_counter() - t0
        n = min(len(o.points), len(s.points))
        row["open3d_same_points"] = bool(len(o.points) == len(s.points) and np.allclose(o.points[:n], s.points[:n],
                                                                                     atol=1e-9))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--anny", type=int, default=3, help="anny bodies")
    ap.add_argument("--faust", type=int, default=3, help="FAUST registrations (when the data is here)")
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--noise-mm", type=float, default=1.0)
    ap.add_argument("--json", default=None, help="write the rows and the summary here")
    args = ap.parse_args()

    from _summary import add_means, emit

    from bodydata.mesh.raycast import open3d_available

    o3d = open3d_available()
    rows = []
    for name, v, f, up in _bodies(args.anny, args.faust):
        r = measure(name, v, f, up, args, o3d)
        rows.append(r)
        extra = (f"  open3d {r['seconds_open3d']:.2f} s (same points: {r['open3d_same_points']})" if o3d else "")
        print(f"{name:28s} {r['points']:7d} pts (floor {r['floor_fraction']:.0%})  holes {r['hole_fraction']:.1%}  "
              f"{r['seconds']:.2f} s  to surface mean {r['mean_mm']:.3f} / p95 {r['p95_mm']:.3f} mm  "
              f"(model {r['model_mean_mm']:.3f} / {r['model_p95_mm']:.3f}){extra}", flush=True)
    if not o3d:
        print("open3d is not importable here: numpy backend only (pip install 'bodydata[open3d]')")
    keys = ["points", "floor_fraction", "hole_fraction", "seconds", "seconds_open3d", "mean_mm", "p95_mm",
            "model_mean_mm", "model_p95_mm"]
    emit(add_means({"n_bodies": len(rows), "points_target": args.points, "noise_mm": args.noise_mm}, rows, keys,
                   "mean_"), rows, args.json)


if __name__ == "__main__":
    main()
