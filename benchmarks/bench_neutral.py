"""Accuracy and speed of neutral-pose construction on anny identities posed by the generator (true neutral known).

Prints, for ``--identities`` x ``--poses`` bodies (``bodydata.sources.anny_synth``, seed ``--seed``):

* per subject (the pose with the smallest rigid residual to the target is deformed): MED in mm between
  the constructed neutral and the identity's true neutral after rigid (Kabsch) alignment, and the MED
  of the chosen pose itself (before); mean / median / max over subjects;
* ``--all-poses``: the same for every pose deformed on its own, and the consistency between neutrals
  built from different poses of one subject (mean pairwise MED after rigid alignment);
* segment (landmark-pair) length change: constructed vs chosen pose and constructed vs true neutral,
  mean |change| in mm and %;
* seconds per subject (pose choice + ARAP), excluding mesh generation; the one-time setup
  (template, segments, factorisation) separately.

Example: ``python benchmarks/bench_neutral.py --topology notoes --identities 20 --poses 4 --all-poses``
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topology", default="notoes", choices=["notoes", "notoes_collapse10pc"])
    ap.add_argument("--identities", type=int, default=10)
    ap.add_argument("--poses", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--all-poses", action="store_true", help="also deform every pose and report consistency")
    ap.add_argument("--orientation", default="part", choices=["part", "landmarks", "swing"])
    ap.add_argument("--handle-weight", type=float, default=10.0)
    args = ap.parse_args()

    from bodydata.neutral.neutralize import NeutralConfig, Neutralizer
    from bodydata.neutral.procrustes import mean_euclidean_distance
    from bodydata.sources.anny_synth import AnnySynth
    from bodydata.templates.template import load_template

    name = "anny" if args.topology == "notoes" else "anny-lite"
    t0 = time.perf_counter()
    tpl = load_template(name)
    nz = Neutralizer(tpl, tpl.vertices, NeutralConfig(orientation=args.orientation, handle_weight=args.handle_weight))
    setup = time.perf_counter() - t0
    synth = AnnySynth(topology=args.topology, check_intersections=False, device="cpu")
    print(f"template {name}: {tpl.n_vertices} vertices, {len(nz.handles)} handles, {nz.solver.n_clamped} of "
          f"{len(nz.solver.edges)} cotangent weights clamped; setup {setup:.2f} s")
    med, before, secs, iters, dlen_pose, dlen_true, pct_true = [], [], [], [], [], [], []
    all_med, consist, poses_used = [], [], []
    for i in range(args.identities):
        ident = synth.identity(args.seed, i, args.poses)
        truth = ident.neutral[args.topology]
        poses = np.stack([b.vertices for b in ident.bodies])
        t = time.perf_counter()
        res = nz.subject(poses)
        secs.append(time.perf_counter() - t)
        iters.append(res.iterations)
        med.append(mean_euclidean_distance(res.vertices, truth) * 1000)
        before.append(mean_euclidean_distance(poses[res.pose_index], truth) * 1000)
        poses_used.append(ident.bodies[res.pose_index].stem)
        lt = nz.segments.lengths(truth)
        dlen_pose.append(np.abs(res.segment_lengths_after - res.segment_lengths_before) * 1000)
        dlen_true.append(np.abs(res.segment_lengths_after - lt) * 1000)
        pct_true.append(100 * np.abs(res.segment_lengths_after - lt) / lt)
        if args.all_poses:
            outs = []
            for k in range(len(poses)):
                _, sol = nz.deform(poses[k])
                outs.append(sol.vertices)
                all_med.append(mean_euclidean_distance(sol.vertices, truth) * 1000)
            consist += [mean_euclidean_distance(outs[a], outs[b]) * 1000
                        for a in range(len(outs)) for b in range(a + 1, len(outs))]
        print(f"  {ident.identity}: pose {poses_used[-1]:28s} MED {before[-1]:6.1f} -> {med[-1]:5.1f} mm "
              f"({res.iterations} it, {secs[-1]:.2f} s)")

    def dist(x):
        x = np.asarray(x, dtype=np.float64)
        return f"mean {x.mean():.2f} median {np.median(x):.2f} max {x.max():.2f} (n={x.size})"

    print(f"MED constructed vs true neutral, rigidly aligned (mm): {dist(med)}")
    print(f"MED chosen pose vs true neutral, rigidly aligned (mm): {dist(before)}")
    if args.all_poses:
        print(f"MED every pose deformed vs true neutral (mm):        {dist(all_med)}")
        print(f"consistency, pairwise MED between neutrals of one subject (mm): {dist(consist)}")
    dp, dt, pt = np.stack(dlen_pose), np.stack(dlen_true), np.stack(pct_true)
    print(f"segment length |change| vs chosen pose (mm): mean {dp.mean():.2f} max {dp.max():.2f}")
    print(f"segment length |error| vs true neutral: mean {dt.mean():.2f} mm ({pt.mean():.2f} %), max {dt.max():.2f} mm ({pt.max():.1f} %)")
    worst = np.argsort(-dt.mean(0))[:4]
    print("  largest mean length errors: " + ", ".join(f"{nz.segments.names[k]} {dt[:, k].mean():.1f} mm" for k in worst))
    print(f"seconds per subject ({args.poses} candidate poses, {tpl.n_vertices} vertices): {dist(secs)}; "
          f"iterations {dist(iters)}")


if __name__ == "__main__":
    main()
