"""The correspondence benchmark's ruler: Dijkstra vs exact (MMP) vs edge-flip vs heat geodesics on FAUST_r pairs.

For three FAUST_r pairs (A -> B), 600 of the 5,000 .vts samples (fixed seed): the true point on B and the point the
protocol predicts when the true FAUST registrations carry A's samples to B (``--registrations``: the discretisation
floor: mostly neighbouring vertices), 600 pairs of a sample and a vertex 1-5 cm from it along the edges (the scale of
today's converted errors, ~2 cm), and 600 random vertex pairs of B (long paths).
Prints, per method, the mean relative difference of the distances to the exact (MMP) ones, seconds per pair of shapes
for the 600 samples, and the x100 error / sqrt(area) the benchmark would report. With ``--floor-ids`` it also reruns
``bodydata benchmark correspondence --registrations --pairs consecutive`` over those ids with each ruler of
``--floor-rulers``::

    python benchmarks/bench_geodesic.py --root ../shared/data/faust_r --registrations ../shared/data/faust/registrations \
        [--floor-ids tr_reg_000-019]

Methods whose optional package (gdist, potpourri3d) is missing are skipped; the exact reference needs gdist.
"flip" runs potpourri3d's edge flips when installed, "flip-py" always bodydata's pure-Python ones.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

PAIRS = (("tr_reg_000", "tr_reg_001"), ("tr_reg_012", "tr_reg_035"), ("tr_reg_050", "tr_reg_077"))


def _predictions(root: Path, regs: Path, a: str, b: str, sample: np.ndarray):
    """(B shape, truth (k,), predicted (k,)) vertex ids on B for the samples, through the aligned registrations."""
    from bodydata.mesh import read_mesh
    from bodydata.registration.correspondence import load_shape, transfer
    from bodydata.registration.register import similarity_from_points
    from bodydata.sources.remeshed import read_vts

    shapes = {s: load_shape(root, s) for s in (a, b)}
    conv, faces = {}, None
    for s, sh in shapes.items():
        reg = read_mesh(regs / f"{s}.ply")
        faces = reg.faces
        smpl = read_vts(root / "corres" / "sampleID.vts", len(reg.vertices))
        sc, rot, t = similarity_from_points(reg.vertices[smpl], sh.vertices[sh.vts])
        conv[s] = sc * reg.vertices @ rot.T + t
    sa = shapes[a]
    sub = type(sa)(sa.stem, sa.vertices, sa.faces, sa.vts[sample])
    pred = transfer(sub, conv[a], conv[b], faces, shapes[b].vertices)
    return shapes[b], shapes[b].vts[sample], pred


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, type=Path, help="FAUST_r folder (off/, corres/)")
    ap.add_argument("--registrations", required=True, type=Path, help="FAUST registrations folder (tr_reg_XXX.ply)")
    ap.add_argument("--samples", type=int, default=600)
    ap.add_argument("--floor-ids", default=None, help="also rerun the benchmark's floor over these ids")
    ap.add_argument("--floor-rulers", default="dijkstra,exact", help="comma list of --geodesics values for the floor")
    args = ap.parse_args()

    from bodydata.mesh.areas import surface_area
    from bodydata.mesh.geodesic import GeodesicSolver, available_methods

    # "flip" uses potpourri3d when installed; "flip-py" is the same method in bodydata's pure Python
    methods = [m for m in ("mmp", "flip", "flip-py", "heat", "dijkstra") if m.split("-")[0] in available_methods()]
    if "mmp" not in methods:
        raise SystemExit("the exact reference needs gdist (pip install 'bodydata[geodesic]')")
    rng = np.random.default_rng(0)
    sets = ("floor", "near", "random")
    acc = {m: {**{f"rel_{k}": [] for k in sets}, "s_per_pair": [], "x100": []} for m in methods}
    for a, b in PAIRS:
        sample = rng.choice(5000, args.samples, replace=False)
        shape_b, truth, pred = _predictions(args.root, args.registrations, a, b, sample)
        rs, rt = rng.integers(0, len(shape_b.vertices), (2, args.samples))
        edge = GeodesicSolver(shape_b.vertices, shape_b.faces, "dijkstra").from_sources(truth)
        near = np.array([rng.choice(np.flatnonzero((row > 0.01) & (row < 0.05))) for row in edge])
        area = surface_area(shape_b.vertices, shape_b.faces)
        dist = {}
        for m in methods:
            t0 = time.perf_counter()
            solver = GeodesicSolver(shape_b.vertices, shape_b.faces, m.split("-")[0], pure_python=m == "flip-py")
            d = solver.pairs(truth, pred)
            acc[m]["s_per_pair"].append(time.perf_counter() - t0)
            dist[m] = (d, solver.pairs(truth, near), solver.pairs(rs, rt))
            acc[m]["x100"].append(100 * float(d.mean() / np.sqrt(area)))
        for m in methods:
            for i, key in enumerate(sets):
                ok = dist["mmp"][i] > 0
                acc[m][f"rel_{key}"].append(float(np.mean(dist[m][i][ok] / dist["mmp"][i][ok] - 1)))
        print(f"{a} -> {b}: " + ", ".join(f"{m} {acc[m]['x100'][-1]:.3f}" for m in methods) + " (x100 floor error)")
    print("\nmean relative difference to mmp (exact) per pair set; seconds per shape pair (600 floor samples)")
    print(f"{'method':10s} {'floor':>8s} {'1-5 cm':>8s} {'random':>8s} {'s/pair':>8s} {'x100 floor':>11s}")
    for m in methods:
        r = {k: float(np.mean(v)) for k, v in acc[m].items()}
        print(f"{m:10s} " + " ".join(f"{100 * r['rel_' + k]:+7.2f}%" for k in sets)
              + f" {r['s_per_pair']:8.3f} {r['x100']:11.3f}")
    if args.floor_ids:
        from bodydata.registration.correspondence import run_benchmark

        for ruler in args.floor_rulers.split(","):
            t0 = time.perf_counter()
            s = run_benchmark(args.root, args.registrations, registrations=True, ids=args.floor_ids,
                              pairs="consecutive", geodesics=ruler)
            print(json.dumps({k: s[k] for k in ("geodesics", "pairs", "mean_error_x100", "median_pair_x100")})
                  + f"  {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
