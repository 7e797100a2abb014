"""anny fitted to bodies of unknown units and orientation (the body-model start of a conversion): accuracy and speed.

    python benchmarks/bench_bodyfit.py [--identities 4] [--poses 2] [--faust ../shared/data/faust] [--faust-ids 000,037]
    python benchmarks/bench_bodyfit.py --identities 0 --faust ../shared/data/faust --faust-ids 000-079

(1) Generated anny bodies (12,272 vertices; held-out seed) in millimetres under a random rotation and shift: MED of the
fitted body to the truth (same vertex order), the two-sided distance the fit reports, the chosen hypothesis, seconds.
(2) FAUST registrations (metres, y-up, SMPL topology), when the folder is given: distance of anny's landmark vertices
on the fitted body to the shipped SMPL landmark vertices over the 26 shared names (the crotch left out), per mesh its
mean, median and max, and the median once snapped to the nearest FAUST vertex (the automatic landmarks a conversion
uses); then over the meshes: the mean and median of the per-mesh means, how many are over 60 and 100 mm (a limb or
the facing wrong; two body models' landmark sets differ by 2-3 cm where the fit is right), seconds per fit.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=4)
    ap.add_argument("--poses", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--faust", type=Path, default=None)
    ap.add_argument("--faust-ids", default="000,037")
    args = ap.parse_args()

    from scipy.spatial.transform import Rotation

    from bodydata.bodyfit.fit import BodyFitSettings, BodyFitter
    from bodydata.generator.bodies import anny_bodies

    fitter = BodyFitter(BodyFitSettings())
    names = []
    if args.identities > 0:  # 0: FAUST only
        bodies = anny_bodies("notoes", args.identities, args.poses, seed=args.seed)
        names = bodies.names
    meds, secs = [], []
    for i, name in enumerate(names):
        v = bodies.vertices["notoes"][i]
        rot = Rotation.random(random_state=i).as_matrix()
        target = 1000.0 * v @ rot.T + np.array([100.0, -300.0, 2000.0])
        t0 = time.perf_counter()
        fit = fitter.fit(target, bodies.faces["notoes"])
        secs.append(time.perf_counter() - t0)
        meds.append(float(np.linalg.norm(fit.vertices - target, axis=1).mean()))
        print(f"{name:32s} {fit.status:6s} {fit.hypothesis:28s} two-sided {fit.distance_mm:5.1f} mm  "
              f"MED {meds[-1]:6.1f} mm  {secs[-1]:5.1f} s", flush=True)
    if meds:
        print(f"anny, {len(meds)} bodies (mm, random rotation): MED mean {np.mean(meds):.1f} mm, median "
              f"{np.median(meds):.1f}, max {np.max(meds):.1f}; {np.mean(secs):.1f} s per body")
    if args.faust is None:
        return
    from bodydata.mesh import read_mesh
    from bodydata.registration.body_landmarks import BodyLandmarks
    from bodydata.templates.landmarks import LANDMARK_NAMES, load_landmarks

    smpl, anny = load_landmarks("smpl_6890"), load_landmarks("anny_notoes")
    finder = BodyLandmarks(list(LANDMARK_NAMES))
    means, secs = [], []
    from _summary import faust_ids

    for mid in faust_ids(args.faust_ids):
        mesh = read_mesh(args.faust / "registrations" / f"tr_reg_{mid}.ply")
        t0 = time.perf_counter()
        got = finder.find(mesh.vertices, mesh.faces)
        dt = time.perf_counter() - t0
        if got.landmarks is None:
            print(f"tr_reg_{mid}: body fit failed: {got.reason}")
            continue
        names = [n for n in got.landmarks if n in smpl and n != "crotch"]
        err = np.array([1000 * np.linalg.norm(got.fit.vertices[anny[n]] - mesh.vertices[smpl[n]]) for n in names])
        snapped = [1000 * np.linalg.norm(mesh.vertices[got.landmarks[n]] - mesh.vertices[smpl[n]]) for n in names]
        means.append(err.mean())
        secs.append(dt)
        print(f"FAUST tr_reg_{mid}: {got.fit.hypothesis}, two-sided {got.fit.distance_mm:.1f} mm; landmarks vs SMPL's: "
              f"mean {err.mean():.0f} mm, median {np.median(err):.0f}, max {err.max():.0f} over {len(err)} "
              f"(snapped median {np.median(snapped):.0f}); {dt:.1f} s", flush=True)
    if means:
        m = np.array(means)
        print(f"FAUST, {len(m)} registrations: landmark error per mesh mean {m.mean():.1f} mm "
              f"(median {np.median(m):.1f}); over 60 mm: {(m > 60).sum()}, over 100 mm: {(m > 100).sum()}; "
              f"{np.mean(secs):.1f} s per fit")



if __name__ == "__main__":
    main()
