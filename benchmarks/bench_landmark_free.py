"""Landmark-free conversion on FAUST_r: the correspondence error (x100 geodesic / sqrt(area)) with no landmarks at all
(anny fitted to each shape gives landmarks and, for an anny template, a guide), without the guide, and with 27
ground-truth landmarks through the .vts maps, on the same shapes; seconds per shape.

    python benchmarks/bench_landmark_free.py --faust-r ../shared/data/faust_r --faust ../shared/data/faust \
        --prior PRIOR.npz --ids 000-009 --work /tmp/lmfree [--variants model,noguide,vts] [--workers 2]

Each variant is a ``bodydata convert`` run into ``WORK/<variant>`` (finished shapes are skipped on a re-run, so an
interrupted benchmark resumes), then ``bodydata benchmark correspondence`` over every ordered pair of the converted
shapes with the exact (edge-flip) geodesic ruler. The prior: ``bodydata prior build --template anny
--anny-identities 16 --anny-poses 5 --holdout-identities 0 --components 200 --out PRIOR.npz`` (what the pipeline
builds).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

VARIANTS = {
    "model": dict(landmarks="model"),
    "noguide": dict(landmarks="model", registration={"guide_weight": 0.0}),
    "vts": dict(vts=True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faust-r", required=True, type=Path)
    ap.add_argument("--faust", required=True, type=Path, help="FAUST folder with registrations/ (for --vts)")
    ap.add_argument("--prior", required=True, type=Path)
    ap.add_argument("--ids", default="000-009", help="first-last shape numbers")
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--template", default="anny")
    ap.add_argument("--variants", default="model,noguide,vts")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from bodydata.pipeline.stage_convert import run_convert
    from bodydata.registration.correspondence import run_benchmark

    from _summary import faust_ids

    match = "tr_reg_(" + "|".join(faust_ids(args.ids)) + r")\b"
    table = []
    for name in args.variants.split(","):
        spec = dict(VARIANTS[name])
        vts = spec.pop("vts", False)
        out = args.work / name
        run = run_convert(out, workers=args.workers, progress=False, template=args.template, prior=str(args.prior),
                          source="remeshed", root=str(args.faust_r), match=match,
                          vts_landmarks=str(args.faust / "registrations") if vts else None,
                          vts_root=str(args.faust_r) if vts else None, **spec)
        done = [r for r in run.results if r.status == "done"]
        secs = np.mean([r.seconds for r in done]) if done else float("nan")
        # pairs among the converted shapes (a failed shape is counted in the table, not in the error)
        ids = ",".join(sorted({re.search(r"tr_reg_\d{3}", r.id).group(0) for r in done}))
        res = run_benchmark(args.faust_r, out, ids=ids, geodesics="exact", out=out / "correspondence.csv")
        table.append((name, len(done), len(run.results), res["mean_error_x100"], secs,
                      np.mean([r.p2m_mean_mm for r in done]) if done else float("nan")))
        print(f"{name}: {len(done)}/{len(run.results)} converted, correspondence x100 {table[-1][3]}, "
              f"{secs:.1f} s/shape, converted->input {table[-1][5]:.2f} (x1000 units)", flush=True)
    print("\nvariant   converted   x100 (exact geodesics)   s/shape")
    for name, d, n, err, secs, _ in table:
        print(f"{name:9s} {d:3d}/{n:<3d}     {err}   {secs:8.1f}")


if __name__ == "__main__":
    main()
