"""The registered anny fit (known correspondence, Levenberg-Marquardt) on anny's own posed bodies: accuracy and time.

For ``--identities`` x ``--poses`` generator bodies (seed ``--seed``, 12,272 vertices by default), each identity's
poses are fitted together with one shared phenotype (as the neutral stage does) and the script prints, per
identity and overall: the fit's MED to the meshes (mm), the largest phenotype error, the median and largest joint
angle error (degrees) and seconds per subject. The bodies are anny's own, so the exact answer exists: MED 0 is
reachable and anything above it is the solver stopping short (a local minimum or the iteration limit).
``--stride`` and ``--no-restart`` show what the solver's defaults buy (every stride-th vertex enters the
Jacobian; the mirrored muscle/weight restart).

Example: ``python benchmarks/bench_fit_registered.py --identities 10 --poses 4 --seed 1``
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=10)
    ap.add_argument("--poses", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--topology", default="notoes")
    ap.add_argument("--stride", type=int, default=None, help="RegisteredFitSettings.stride (default: the setting's)")
    ap.add_argument("--no-restart", action="store_true", help="RegisteredFitSettings.restart off")
    args = ap.parse_args()

    from dataclasses import replace

    from bodydata.bodyfit.body import PHENOTYPE_KEYS
    from bodydata.bodyfit.fit_registered import RegisteredFitSettings, RegisteredFitter
    from bodydata.generator.synth import AnnySynth

    settings = RegisteredFitSettings()
    if args.stride is not None:
        settings = replace(settings, stride=args.stride)
    if args.no_restart:
        settings = replace(settings, restart=False)
    synth = AnnySynth(topology=args.topology, check_intersections=False, device="cpu")
    fitter = RegisteredFitter(args.topology, settings)
    print(f"anny {args.topology}: {fitter.body.n_vertices} vertices, {fitter.body.n_dofs} DOFs; {settings}")
    meds, ph_err, ang_med, ang_max, secs = [], [], [], [], []
    for i in range(args.identities):
        ident = synth.identity(args.seed, i, args.poses)
        y = np.stack([b.vertices for b in ident.bodies])
        t = time.perf_counter()
        fits = fitter.fit(y, share_phenotype=True)
        secs.append(time.perf_counter() - t)
        true_ph = np.array([ident.phenotype.values()[k] for k in PHENOTYPE_KEYS])
        err = np.abs(np.stack([f.angles for f in fits]) - np.stack([b.angles for b in ident.bodies]))
        meds.append(max(f.med_mm for f in fits))
        ph_err.append(float(np.abs(fits[0].phenotype - true_ph).max()))
        ang_med.append(float(np.median(err)))
        ang_max.append(float(err.max()))
        print(f"  {ident.identity}: MED worst pose {meds[-1]:6.3f} mm, phenotype error {ph_err[-1]:.3f}, joint angles "
              f"median {ang_med[-1]:.2f} max {ang_max[-1]:.1f} deg, {secs[-1]:.1f} s", flush=True)

    def dist(x) -> str:
        x = np.asarray(x)
        return f"mean {x.mean():.3f} median {np.median(x):.3f} max {x.max():.3f}"

    print(f"MED to the meshes, worst pose per subject (mm): {dist(meds)}")
    print(f"subjects with MED < 0.1 mm: {int(np.sum(np.asarray(meds) < 0.1))} of {len(meds)}")
    print(f"largest phenotype error per subject: {dist(ph_err)}")
    print(f"joint angle error per subject (deg): median {dist(ang_med)}; max {dist(ang_max)}")
    print(f"seconds per subject ({args.poses} poses): {dist(secs)}")


if __name__ == "__main__":
    main()
