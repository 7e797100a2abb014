"""Accuracy and speed of neutral-pose construction on anny identities posed by the generator (true neutral known).

Prints, for ``--identities`` x ``--poses`` bodies (``bodydata.generator.synth``, seed ``--seed``):

* per subject (default method: the ``--average`` poses with the smallest joint-angle distance to the
  target deformed and averaged; ``--selection rigid --average 1`` is the paper's smallest rigid residual):
  MED in mm between the constructed neutral and the identity's true neutral after rigid (Kabsch)
  alignment, and the MED of the chosen pose itself (before); mean / median / max over subjects, and
  by the pose family of the best-scored pose;
* ``--baseline``: the same subjects with the paper's method (rigid residual, one pose) in the same process;
* ``--all-poses``: the same for every pose deformed on its own (by pose family), and the consistency
  between neutrals built from different poses of one subject (mean pairwise MED after rigid alignment);
* segment (landmark-pair) length change: constructed vs chosen pose and constructed vs true neutral,
  mean |change| in mm and %;
* seconds per subject (pose choice + ARAP), excluding mesh generation; the one-time setup
  (template, segments, factorisation) separately.

Example: ``python benchmarks/bench_neutral.py --topology notoes --identities 20 --poses 4 --seed 1 --all-poses --baseline``

``--faust DIR`` (e.g. ``../shared/data``) instead runs a consistency check on the FAUST training
registrations present (tr_reg_000..079 here: 8 subjects x 10 poses, SMPL vertex order, no ground-truth neutral) without the
[convert] stage: an in-memory SMPL-order template is built from the Meshcapade SMPL part
segmentation (``smpl/smpl_vert_segmentation.json``, 24 parts merged into the 16), the shipped
``landmarks_smpl_6890.csv`` and, as target, registration ``--faust-target`` (default 0: tr_reg_000,
subject 0 standing with the arms hanging slightly away from the body, the closest to an A-pose;
the medoid of the set, tr_reg_021, has the hands on the hips); joint centres are part-boundary centroids (no anny bones).
Every pose is deformed; reported: pairwise MED between the neutrals of one subject, and PNGs
(``--png-dir``). Nothing derived from the data is written outside ``--png-dir``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


#: SMPL part (Meshcapade segmentation) -> bodydata part.
SMPL_TO_PART = {
    "head": "head_neck", "neck": "head_neck", "spine2": "chest", "spine1": "chest", "leftShoulder": "chest",
    "rightShoulder": "chest", "spine": "abdomen", "hips": "hips",
    **{f"{side}{k}": f"{v}_{s}" for side, s in (("left", "L"), ("right", "R")) for k, v in {
        "Arm": "upper_arm", "ForeArm": "forearm", "Hand": "hand", "HandIndex1": "hand", "UpLeg": "thigh",
        "Leg": "calf", "Foot": "foot", "ToeBase": "foot"}.items()},
}


def faust_consistency(data: str, png_dir: str | None, k_target: int = 0) -> None:
    import json
    from pathlib import Path

    from bodydata.mesh import read_mesh
    from bodydata.neutral.neutralize import NeutralConfig, Neutralizer
    from bodydata.mesh.alignment import align, mean_euclidean_distance
    from bodydata.templates.landmarks import load_landmarks
    from bodydata.templates.parts import PART_INDEX, PART_NAMES
    from bodydata.templates.template import Template

    root = Path(data)
    meshes = [read_mesh(root / "faust" / "registrations" / f"tr_reg_{i:03d}.ply", expected_vertices=6890) for i in range(80)]
    verts = np.stack([m.vertices for m in meshes])
    faces = meshes[0].faces
    seg = json.loads((root / "smpl" / "smpl_vert_segmentation.json").read_text())
    labels = np.full(6890, -1, dtype=np.int64)
    for name, ids in seg.items():  # boundary vertices listed twice keep their first part
        ids = np.asarray(ids, dtype=np.int64)
        free = ids[labels[ids] < 0]
        labels[free] = PART_INDEX[SMPL_TO_PART[name]]
    assert (labels >= 0).all()
    t0 = time.perf_counter()
    tpl = Template("smpl-faust", verts[k_target], faces, labels, list(PART_NAMES), load_landmarks("smpl_6890"),
                   up_axis="y", front_axis="z")
    nz = Neutralizer(tpl, verts[k_target], NeutralConfig())
    print(f"FAUST: target tr_reg_{k_target:03d}, {len(nz.handles)} handles, "
          f"setup {time.perf_counter() - t0:.1f} s")
    consist, secs, meds_target, chosen = [], [], [], []
    for subj in range(len(verts) // 10):
        ids = list(range(10 * subj, 10 * subj + 10))
        outs = []
        for i in ids:
            t = time.perf_counter()
            _, sol = nz.deform(verts[i])
            secs.append(time.perf_counter() - t)
            outs.append(sol.vertices)
            meds_target.append(mean_euclidean_distance(sol.vertices, verts[k_target]) * 1000)
        pair = [mean_euclidean_distance(outs[a], outs[b]) * 1000 for a in range(10) for b in range(a + 1, 10)]
        posed = [mean_euclidean_distance(verts[ids[a]], verts[ids[b]]) * 1000 for a in range(10) for b in range(a + 1, 10)]
        consist += pair
        best = int(np.argmin(nz.scores(verts[ids])))
        chosen.append(ids[best])
        print(f"  subject {subj}: pairwise MED between its 10 neutrals mean {np.mean(pair):.1f} max {np.max(pair):.1f} mm "
              f"(between its posed meshes {np.mean(posed):.1f} mm); chosen pose tr_reg_{ids[best]:03d}")
        if png_dir:
            from bodydata.viz.before_after import render_before_after

            render_before_after(Path(png_dir) / f"faust_subject{subj}.png", faces,
                                [align(verts[ids[best]], verts[k_target]).apply(verts[ids[best]]), outs[best], verts[k_target]],
                                ["chosen pose", "constructed neutral", "target"], up=(0, 1, 0), front=(0, 0, 1),
                                suptitle=f"FAUST subject {subj}: tr_reg_{ids[best]:03d} -> neutral")
    c = np.asarray(consist)
    print(f"consistency, pairwise MED between neutrals of one subject (mm): mean {c.mean():.2f} median {np.median(c):.2f} "
          f"max {c.max():.2f} (n={c.size})")
    print(f"seconds per pose (6890 vertices): mean {np.mean(secs):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topology", default="notoes", choices=["notoes", "notoes_collapse10pc"])
    ap.add_argument("--identities", type=int, default=10)
    ap.add_argument("--poses", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--all-poses", action="store_true", help="also deform every pose and report consistency")
    ap.add_argument("--orientation", default="part", choices=["part", "landmarks", "swing"])
    ap.add_argument("--handle-weight", type=float, default=10.0)
    ap.add_argument("--selection", default="joint_angles", choices=["joint_angles", "rigid"])
    ap.add_argument("--average", type=int, default=2, help="best-scored poses deformed and averaged (1: single pose)")
    ap.add_argument("--baseline", action="store_true", help="also run the paper's method (rigid residual, one pose)")
    ap.add_argument("--girdle", action="store_true", help="turn on the shoulder-girdle (clavicle) joint (NeutralConfig.girdle)")
    ap.add_argument("--method", default="body", choices=["body", "arap"], help="neutral method (NeutralConfig.method)")
    ap.add_argument("--body-arap", action="store_true", help="method body: also run the ARAP step on the fused neutral")
    ap.add_argument("--faust", default=None, help="shared data folder: run the FAUST consistency check instead")
    ap.add_argument("--png-dir", default=None, help="with --faust: write one before/after PNG per subject here")
    ap.add_argument("--faust-target", type=int, default=0, help="with --faust: index of the target registration")
    ap.add_argument("--jacobian-every", type=int, default=None,
                    help="method body: the anny fit's exact Jacobian every N accepted steps, Broyden updates between "
                         "(RegisteredFitSettings.jacobian_every; 1: exact at every step) [default: the settings']")
    ap.add_argument("--rearticulate", type=int, default=1,
                    help="method body: NeutralConfig.rearticulate passes (0: off); not used by --faust, whose SMPL "
                         "connectivity is not an anny topology (method arap, which has no re-articulation)")
    args = ap.parse_args()
    if args.faust:
        faust_consistency(args.faust, args.png_dir, args.faust_target)
        return

    from bodydata.neutral.neutralize import NeutralConfig, Neutralizer, load_target
    from bodydata.mesh.alignment import mean_euclidean_distance, vertex_distances
    from bodydata.generator.synth import AnnySynth
    from bodydata.templates.template import load_template

    name = "anny" if args.topology == "notoes" else "anny-lite"
    t0 = time.perf_counter()
    tpl = load_template(name)
    # the generator's true neutrals are anny's reference pose, the target `bodydata neutralize --target anny` uses
    # (the template holds anny's bind pose, 55 mm away at the arms)
    target = load_target("anny", tpl)
    girdle = {"girdle": ("upper_arm_L", "upper_arm_R")} if args.girdle else {}
    nz = Neutralizer(tpl, target, NeutralConfig(orientation=args.orientation, handle_weight=args.handle_weight,
                                                      selection=args.selection, average=args.average,
                                                      method=args.method, body_arap=args.body_arap,
                                                      rearticulate=args.rearticulate, **girdle))
    if args.jacobian_every is not None and nz.method == "body":
        import dataclasses

        nz.fitter.settings = dataclasses.replace(nz.fitter.settings, jacobian_every=args.jacobian_every)
    setup = time.perf_counter() - t0
    paper = None
    if args.baseline:
        paper = Neutralizer(tpl, target, NeutralConfig(orientation=args.orientation, handle_weight=args.handle_weight,
                                                             selection="rigid", average=1, method="arap", **girdle))
    synth = AnnySynth(topology=args.topology, check_intersections=False, device="cpu")
    print(f"template {name}: {tpl.n_vertices} vertices, {len(nz.handles)} handles, {nz.solver.n_clamped} of "
          f"{len(nz.solver.edges)} cotangent weights clamped; setup {setup:.2f} s")
    p99 = []
    med, before, secs, iters, dlen_pose, dlen_true, pct_true = [], [], [], [], [], [], []
    all_med, consist, poses_used = [], [], []
    fam_chosen: dict[str, list[float]] = {}
    fam_all: dict[str, list[float]] = {}
    base_med, base_fam, base_secs, base_dlen = [], {}, [], []

    def family(stem: str) -> str:
        return stem.rsplit("_", 1)[0]
    for i in range(args.identities):
        ident = synth.identity(args.seed, i, args.poses)
        truth = ident.neutral[args.topology]
        poses = np.stack([b.vertices for b in ident.bodies])
        t = time.perf_counter()
        res = nz.subject(poses)
        secs.append(time.perf_counter() - t)
        iters.append(res.iterations)
        med.append(mean_euclidean_distance(res.vertices, truth) * 1000)
        p99.append(np.percentile(vertex_distances(res.vertices, truth), 99) * 1000)
        before.append(mean_euclidean_distance(poses[res.pose_index], truth) * 1000)
        poses_used.append(ident.bodies[res.pose_index].stem)
        fam_chosen.setdefault(family(poses_used[-1]), []).append(med[-1])
        if paper is not None:
            t = time.perf_counter()
            bres = paper.subject(poses)
            base_secs.append(time.perf_counter() - t)
            base_med.append(mean_euclidean_distance(bres.vertices, truth) * 1000)
            base_fam.setdefault(family(ident.bodies[bres.pose_index].stem), []).append(base_med[-1])
            base_dlen.append(np.abs(bres.segment_lengths_after - bres.segment_lengths_before) * 1000)
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
                fam_all.setdefault(family(ident.bodies[k].stem), []).append(all_med[-1])
            consist += [mean_euclidean_distance(outs[a], outs[b]) * 1000
                        for a in range(len(outs)) for b in range(a + 1, len(outs))]
        extra = f" (+{len(res.pose_indices) - 1} averaged)" if len(res.pose_indices) > 1 else ""
        base = f"; paper's method {base_med[-1]:5.1f} mm" if paper is not None else ""
        print(f"  {ident.identity}: pose {poses_used[-1]:28s}{extra} MED {before[-1]:6.1f} -> {med[-1]:5.1f} mm "
              f"({res.iterations} it, {secs[-1]:.2f} s){base}")

    def dist(x):
        x = np.asarray(x, dtype=np.float64)
        return f"mean {x.mean():.2f} median {np.median(x):.2f} max {x.max():.2f} (n={x.size})"

    print(f"MED constructed vs true neutral, rigidly aligned (mm): {dist(med)}")
    print(f"99th-percentile vertex error to the true neutral, per subject (mm): {dist(p99)}")
    print(f"MED chosen pose vs true neutral, rigidly aligned (mm): {dist(before)}")

    def by_family(groups):
        return ", ".join(f"{f} {np.mean(v):.1f} (n={len(v)})" for f, v in sorted(groups.items()))

    print(f"  by family of the best-scored pose: {by_family(fam_chosen)}")
    if paper is not None:
        print(f"MED paper's method (rigid residual, one pose) (mm):  {dist(base_med)}")
        print(f"  by family of its chosen pose: {by_family(base_fam)}")
        print(f"  segment length |change| vs chosen pose (mm): mean {np.mean(base_dlen):.2f} max {np.max(base_dlen):.2f}; "
              f"seconds per subject {np.mean(base_secs):.2f} (this method {np.mean(secs):.2f}, ratio "
              f"{np.mean(secs) / np.mean(base_secs):.2f})")
    if args.all_poses:
        print(f"MED every pose deformed vs true neutral (mm):        {dist(all_med)}")
        print(f"  by pose family: {by_family(fam_all)}")
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
