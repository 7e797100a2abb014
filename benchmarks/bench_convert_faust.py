"""FAUST registrations converted to a template: point-to-mesh distance both ways per mesh, and the means.

Convert first (any worker count or batch size: they write the same files; finished rows are skipped on a re-run),
then measure::

    bodydata convert --source faust --root FAUST/training --template anny --prior PRIOR.npz --out OUT --kind registration
    python benchmarks/bench_convert_faust.py --converted OUT/meshes --faust FAUST/training [--template anny]

A quick run (about 10 x 30 s on a busy 2-core CPU): a small prior and the first subject only::

    bodydata prior build --template anny --anny-identities 8 --anny-poses 4 --holdout-identities 0 --components 60 \
        --out PRIOR.npz
    bodydata convert ... --match 'tr_reg_00[0-9]' --scheduler synchronous --quiet

``--drift`` also measures how far the correspondences slide between poses, where FAUST knows the truth: its
registrations share one connectivity, so each converted vertex, located on its own registration (face +
barycentrics), can be carried onto the subject's first converted pose's registration and compared there with that
pose's own converted vertex (mm on one body; 0 = every pose puts template vertex i on the same body point; the mouth
cavity left out, as in the distances). It is printed per mesh (mean, median, the parts that slide most), and over
all meshes: the mean per part and overall, the range and median of the per-mesh means, the mean of the per-mesh
medians, and how many meshes drift by more than 30 mm on average (a swapped or folded limb rather than a slide).

Distances are recomputed here from the files (closest points on triangles, the same code as the conversion rows):
converted -> input over the template's surface vertices (the mouth cavity left out, as in the rows) and
input -> converted over all input vertices; millimetres (FAUST is in metres). Goal (issue "convert"): <= 2 mm mean.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--converted", required=True, type=Path, help="folder of converted meshes (*tr_reg_XXX.ply)")
    ap.add_argument("--faust", required=True, type=Path, help="the FAUST training folder (registrations/)")
    ap.add_argument("--template", default="anny")
    ap.add_argument("--drift", action="store_true", help="also the correspondence drift between poses of a subject")
    ap.add_argument("--match", default=None, help="only meshes whose file name matches this regular expression")
    args = ap.parse_args()

    from bodydata.mesh import read_mesh
    from bodydata.mesh.carry import carry
    from bodydata.mesh.closest import point_to_mesh
    from bodydata.sources.faust import subject_pose
    from bodydata.templates.template import load_template

    tpl = load_template(args.template)
    keep = tpl.surface_mask
    rows = []
    names = tpl.part_names
    labels = tpl.part_labels[keep]  # the drift, like the distances, leaves the mouth cavity out
    count = np.maximum(np.bincount(labels, minlength=len(names)), 1)
    first: dict[int, tuple] = {}  # subject -> (its first pose's number, its converted vertices on its registration,
    #                                          that registration's vertices)
    drift_parts, drift_mesh = [], []
    for path in sorted(args.converted.glob("*.ply")):
        m = re.search(r"tr_reg_(\d{3})", path.name)
        if not m or (args.match and not re.search(args.match, path.name)):
            continue
        conv = read_mesh(path, expected_vertices=tpl.n_vertices).vertices
        src = read_mesh(args.faust / "registrations" / f"tr_reg_{m.group(1)}.ply")
        a = 1000 * point_to_mesh(conv[keep], src.vertices, src.faces)
        b = 1000 * point_to_mesh(src.vertices, conv, tpl.faces)
        rows.append((m.group(1), a.mean(), np.percentile(a, 95), b.mean(), np.percentile(b, 95)))
        print(f"tr_reg_{rows[-1][0]}  converted->input {rows[-1][1]:5.2f} mm (p95 {rows[-1][2]:5.1f})   "
              f"input->converted {rows[-1][3]:5.2f} mm (p95 {rows[-1][4]:5.1f})", flush=True)
        if args.drift:
            subject = subject_pose(int(m.group(1)))[0]
            if subject not in first:
                first[subject] = (m.group(1), carry(conv, src.vertices, src.vertices, src.faces), src.vertices)
                continue
            ref, ref_points, ref_vertices = first[subject]
            d = 1000 * np.linalg.norm(carry(conv, src.vertices, ref_vertices, src.faces) - ref_points, axis=1)[keep]
            parts = np.bincount(labels, weights=d, minlength=len(names)) / count
            drift_parts.append(parts)
            drift_mesh.append((d.mean(), np.median(d)))
            top = np.argsort(-parts)[:4]
            print(f"  drift vs tr_reg_{ref}: mean {d.mean():5.1f} mm (median {np.median(d):5.1f}); most: "
                  + ", ".join(f"{names[j]} {parts[j]:.0f}" for j in top), flush=True)
    if not rows:
        raise SystemExit(f"{args.converted}: no converted tr_reg_XXX meshes")
    arr = np.array([r[1:] for r in rows])
    worst = rows[int(np.argmax(arr[:, 0] + arr[:, 2]))][0]
    print(f"{len(rows)} meshes: converted->input mean {arr[:, 0].mean():.2f} mm (median {np.median(arr[:, 0]):.2f}, "
          f"mean p95 {arr[:, 1].mean():.1f}); input->converted mean {arr[:, 2].mean():.2f} mm "
          f"(median {np.median(arr[:, 2]):.2f}, mean p95 {arr[:, 3].mean():.1f}); worst tr_reg_{worst}; "
          f"meshes over 2 mm either way: {int(((arr[:, 0] > 2) | (arr[:, 2] > 2)).sum())}")
    if drift_parts:
        mean_parts = np.mean(drift_parts, axis=0)
        total = float(np.sum(mean_parts * count) / count.sum())
        per = np.array(drift_mesh)
        print(f"correspondence drift between poses ({len(drift_parts)} meshes against their subject's first): mean "
              f"{total:.1f} mm; per mesh: mean {per[:, 0].min():.1f}-{per[:, 0].max():.1f} mm, median of the means "
              f"{np.median(per[:, 0]):.1f}, mean of the medians {per[:, 1].mean():.1f}; meshes over 30 mm mean: "
              f"{int((per[:, 0] > 30).sum())}; per part: "
              + ", ".join(f"{names[j]} {mean_parts[j]:.1f}" for j in range(len(names))))


if __name__ == "__main__":
    main()
