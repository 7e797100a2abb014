"""Consistency of neutral-pose construction on the FAUST subjects converted to the anny template: one neutral per source pose.

FAUST's training registrations (``tr_reg_000..079``: subject = index // 10, pose = index % 10) are
first converted to the anny template (``bodydata convert``, 12,272 vertices); ``--converted DIR`` is
that output folder (``conversion.csv`` + ``meshes/``; rows with a status other than ``ok`` are left
out). The target is anny's mean-phenotype rest pose (``load_target("anny")``, as ``bodydata
neutralize --template anny --target anny``). There is no ground-truth neutral for FAUST, so this
measures how much the neutral depends on the pose it is built from. Per subject it prints:

* the neutral built from EACH converted pose on its own (``Neutralizer.subject(poses, pose=k)``:
  that pose deformed, no selection, no averaging) and the default neutral (automatic selection:
  the 2 poses nearest the target in joint angles, deformed and averaged);
* consistency: pairwise MED (mm, after rigid alignment) between the single-pose neutrals of the
  subject (mean / median / max), for reference the same between its posed (converted) inputs, and
  the MED of each single-pose neutral to the default neutral;
* per pose: the joint-angle distance to the target (degrees, the selection score) and the
  conversion's point-to-mesh error (from ``conversion.csv``), so outliers can be traced;
* the same pairwise MED restricted to the ``--best`` (default 3) poses with the smallest joint-angle
  distance to the target (the candidates the default selection draws from);
* the joint-angle distance left between each single-pose neutral and the target (degrees; 0 = the
  target's articulation reached exactly), which separates residual articulation from shape;
* seconds: the default neutral per subject, one single-pose neutral, and all of a subject's
  neutrals (12,272 vertices).

Overall: the same statistics pooled over subjects, and, as the scale of identity, the pairwise MED
between the default neutrals of different subjects. ``--png-dir``: one PNG per subject (chosen
source pose, constructed default neutral and the target; front and side views).

``--same-correspondence FAUST`` separates the neutral method from the conversion: every pose of a subject is then
its first converted pose carried onto that pose's registration (FAUST's registrations share one connectivity and
its correspondence), so the poses agree on where each template vertex sits on the body, and what spread is
left comes from the neutral method alone.

Example: ``python benchmarks/bench_neutral_faust.py --converted /tmp/s2/faust --subjects 0-7 --png-dir /tmp/neutral_faust_png``
(``--converted`` may be repeated; each subject comes whole from the folder holding most of its poses).
Timings are wall-clock on whatever else the machine runs. Nothing derived from the data is written
outside ``--png-dir``.
"""
from __future__ import annotations

import argparse
import csv
import re
import time
from pathlib import Path

import numpy as np

from bodydata.sources.faust import POSES_PER_SUBJECT


def parse_subjects(text: str) -> list[int]:
    """``"0-7"``, ``"1,3,5"`` or ``"0-2,6"`` -> sorted subject indices."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = (int(x) for x in part.split("-", 1))
            out.update(range(lo, hi + 1))
        else:
            out.add(int(part))
    return sorted(out)


def converted_meshes(folder: Path) -> dict[int, dict]:
    """{FAUST index: {"path": Path, "p2m": mm or nan}} of the converted registrations in ``folder``.

    Rows of ``conversion*.csv`` (status ``ok``; ``bodydata convert`` rewrites ``conversion.csv`` with
    the rows of its own call only, so copies of earlier ones may lie beside it) and of the convert
    stage's ``manifest.csv`` (status ``done``) are used, plus mesh files ``*tr_reg_XXX.ply`` that no
    table lists as failed (a run in progress writes its tables late).
    """
    found: dict[int, dict] = {}
    bad: set[int] = set()
    pattern = re.compile(r"tr_reg_(\d{3})")
    for table in [*sorted(folder.glob("conversion*.csv")), folder / "manifest.csv"]:
        if not table.is_file():
            continue
        with open(table, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                m = pattern.search(row.get("id") or row.get("item") or row.get("out_path") or "")
                if not m:
                    continue
                idx = int(m.group(1))
                if row.get("status") not in ("ok", "done"):
                    if idx not in found:  # a later successful call wins over an earlier failure
                        bad.add(idx)
                    continue
                path = Path(row.get("out_path") or "")
                if not path.is_absolute():
                    path = folder / path
                try:
                    p2m = float(row.get("p2m_mean_mm") or "nan")
                except ValueError:
                    p2m = float("nan")
                if path.is_file() and not (idx in found and np.isnan(p2m)):
                    found[idx] = {"path": path, "p2m": p2m}
                    bad.discard(idx)
    for path in sorted(folder.rglob("*tr_reg_*.ply")):
        m = pattern.search(path.name)
        if m and int(m.group(1)) not in found and int(m.group(1)) not in bad:
            found[int(m.group(1))] = {"path": path, "p2m": float("nan")}
    return found


def pairwise_med(meshes: list[np.ndarray]) -> np.ndarray:
    """Pairwise MED (mm, rigid alignment of the first onto the second) of every unordered pair."""
    from bodydata.mesh.alignment import mean_euclidean_distance

    return np.array([mean_euclidean_distance(meshes[a], meshes[b]) * 1000.0
                     for a in range(len(meshes)) for b in range(a + 1, len(meshes))])


def part_distances(meshes: list[np.ndarray], labels: np.ndarray, n_parts: int) -> tuple[np.ndarray, ...]:
    """Per part, means over unordered pairs after rigid alignment of the whole bodies: the mean vertex distance (mm),
    the same after also aligning the part on its own (its shape: what is left when the part's turn is taken out),
    the angle of that part's own rotation (degrees), and the part of that angle that is a twist about the part's
    long axis (degrees; the principal axis of its vertices, swing-twist decomposition). Four (n_parts,) arrays."""
    from bodydata.mesh.alignment import align
    from bodydata.mesh.rotations import twist_angle

    dist, shape, turn, twist = (np.zeros(n_parts) for _ in range(4))
    n_pairs = 0
    for a in range(len(meshes)):
        for b in range(a + 1, len(meshes)):
            moved = align(meshes[a], meshes[b]).apply(meshes[a])
            for j in range(n_parts):
                m = labels == j
                if not m.any():
                    continue
                dist[j] += np.linalg.norm(moved[m] - meshes[b][m], axis=1).mean() * 1000.0
                own = align(moved[m], meshes[b][m])
                shape[j] += np.linalg.norm(own.apply(moved[m]) - meshes[b][m], axis=1).mean() * 1000.0
                turn[j] += np.degrees(np.arccos(np.clip((np.trace(own.rotation) - 1.0) / 2.0, -1.0, 1.0)))
                centred = meshes[b][m] - meshes[b][m].mean(0)
                axis = np.linalg.svd(centred, full_matrices=False)[2][0]
                twist[j] += abs(np.degrees(twist_angle(own.rotation, axis)))
            n_pairs += 1
    k = max(n_pairs, 1)
    return dist / k, shape / k, turn / k, twist / k


def stats(x) -> str:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return "n/a (n=0)"
    return f"mean {x.mean():6.2f} median {np.median(x):6.2f} max {x.max():6.2f} (n={x.size})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--converted", required=True, action="append",
                    help="output folder of the FAUST conversion (conversion.csv, meshes/); may be given several times: "
                         "each subject is taken whole from the folder holding most of its poses (first on ties)")
    ap.add_argument("--subjects", default="0-7", help="FAUST subjects, e.g. 0-7 or 0,3 (default 0-7)")
    ap.add_argument("--png-dir", default=None, help="write one before/after PNG per subject here")
    ap.add_argument("--best", type=int, default=3, help="also report consistency among the N best-scored poses")
    ap.add_argument("--template", default="anny", help="template name the meshes were converted to (default anny)")
    ap.add_argument("--girdle", action="store_true", help="shoulder-girdle joint on (NeutralConfig.girdle)")
    ap.add_argument("--method", default="auto", choices=["auto", "body", "arap"], help="NeutralConfig.method")
    ap.add_argument("--body-arap", action="store_true", help="NeutralConfig.body_arap: method body, then ARAP with "
                    "the segment-orientation handles on the fused neutral")
    ap.add_argument("--rearticulate", type=int, default=1, help="method body: NeutralConfig.rearticulate passes (0: off)")
    ap.add_argument("--jacobian-every", type=int, default=None,
                    help="method body: the anny fit's exact Jacobian every N accepted steps (1: exact at every step)")
    ap.add_argument("--same-correspondence", default=None, metavar="FAUST",
                    help="FAUST training folder (registrations/): build every pose of a subject from its first "
                         "converted pose, carried onto each pose's registration (FAUST's own correspondence), so the "
                         "spread left is the neutral method's, not the conversion's sliding")
    args = ap.parse_args()

    from bodydata.mesh import read_mesh
    from bodydata.mesh.alignment import align, mean_euclidean_distance
    from bodydata.neutral.neutralize import Neutralizer, load_target
    from bodydata.templates.template import axis_vector, load_template

    folders = [Path(f) for f in args.converted]
    per_folder = [converted_meshes(f) for f in folders]
    subjects = parse_subjects(args.subjects)
    t0 = time.perf_counter()
    tpl = load_template(args.template)
    target = load_target("anny", tpl)
    from bodydata.neutral.neutralize import NeutralConfig

    nz = Neutralizer(tpl, target, NeutralConfig(girdle=("upper_arm_L", "upper_arm_R") if args.girdle else (),
                                                method=args.method, body_arap=args.body_arap,
                                                rearticulate=args.rearticulate))
    if args.jacobian_every is not None and nz.method == "body":
        import dataclasses

        nz.fitter.settings = dataclasses.replace(nz.fitter.settings, jacobian_every=args.jacobian_every)
    print(f"template {tpl.name}: {tpl.n_vertices} vertices; target anny mean-phenotype rest pose; method {nz.method}; "
          f"selection {nz.config.selection}, average {nz.config.average}; setup {time.perf_counter() - t0:.1f} s")
    for f, found in zip(folders, per_folder):
        print(f"converted registrations found: {len(found)} in {f}")

    n_parts = len(tpl.part_names)
    all_parts = []
    all_left, sec_subject, all_best = [], [], []
    all_pair, all_posed, all_to_default, sec_default, sec_single = [], [], [], [], []
    defaults: dict[int, np.ndarray] = {}
    incomplete: list[str] = []
    for s in subjects:
        span = range(POSES_PER_SUBJECT * s, POSES_PER_SUBJECT * (s + 1))
        # One conversion run per subject: mixing runs would add their differences to the spread.
        best = max(range(len(folders)), key=lambda j: (sum(i in per_folder[j] for i in span), -j))
        available = per_folder[best]
        ids = [i for i in span if i in available]
        missing = POSES_PER_SUBJECT - len(ids)
        if missing:
            incomplete.append(f"subject {s}: {missing} pose(s) not converted")
        if len(ids) < 2:
            print(f"subject {s}: {len(ids)} converted pose(s), skipped (needs 2)")
            continue
        t_subject = time.perf_counter()
        poses = np.stack([read_mesh(available[i]["path"], expected_vertices=tpl.n_vertices).vertices for i in ids])
        if args.same_correspondence:
            from bodydata.mesh.carry import carry

            regs = [read_mesh(Path(args.same_correspondence) / "registrations" / f"tr_reg_{i:03d}.ply") for i in ids]
            poses = np.stack([carry(poses[0], regs[0].vertices, r.vertices, r.faces) for r in regs])
        single, scores = [], []
        for k in range(len(ids)):
            res = nz.subject(poses, pose=k)
            assert res.forced and res.pose_indices == (k,)
            single.append(res.vertices)
            scores.append(float(res.scores[k]))
            sec_single.append(res.seconds)
        res = nz.subject(poses)
        sec_default.append(res.seconds)
        sec_subject.append(time.perf_counter() - t_subject)
        left = np.array([nz.joint_angle_distance(v) for v in single])
        all_left.append(left)
        defaults[s] = res.vertices
        pair = pairwise_med(single)
        parts, part_shape, part_turn, part_twist = part_distances(single, tpl.part_labels, n_parts)
        all_parts.append((parts, part_shape, part_turn, part_twist))
        posed = pairwise_med(list(poses))
        to_default = np.array([mean_euclidean_distance(v, res.vertices) * 1000.0 for v in single])
        all_pair.append(pair)
        all_posed.append(posed)
        all_to_default.append(to_default)
        chosen = " + ".join(f"tr_reg_{ids[j]:03d}" for j in res.pose_indices)
        print(f"subject {s} ({len(ids)} poses from {folders[best]}; default from {chosen}, {res.seconds:.2f} s; "
              f"single-pose neutrals {np.mean(sec_single[-len(ids):]):.2f} s each)")
        print(f"  pairwise MED between its single-pose neutrals (mm): {stats(pair)}")
        print(f"  pairwise MED between its posed inputs (mm):         {stats(posed)}")
        print(f"  MED single-pose neutral vs default neutral (mm):    {stats(to_default)}")
        print(f"  joint-angle distance left, single-pose neutral vs target (deg): {stats(left)} "
              f"(posed inputs: {stats(scores)})")
        n = len(ids)
        mat = np.zeros((n, n))
        mat[np.triu_indices(n, 1)] = pair
        mat = mat + mat.T
        best_ids = [int(j) for j in np.argsort(scores, kind="stable")[: max(2, args.best)]]
        best_pair = mat[np.ix_(best_ids, best_ids)][np.triu_indices(len(best_ids), 1)]
        all_best.append(best_pair)
        print(f"  pairwise MED between the neutrals of its {len(best_ids)} best-scored poses "
              f"({', '.join(f'{ids[j]:03d}' for j in best_ids)}) (mm): {stats(best_pair)}")
        top = np.argsort(-parts)[:5]
        print("  largest part distances between its single-pose neutrals (mm): "
              + ", ".join(f"{tpl.part_names[j]} {parts[j]:.1f}" for j in top))
        # Mean MED of each pose's neutral to the other poses' neutrals: which source pose is the outlier.
        spread = mat.sum(1) / (n - 1)
        print("  per pose: " + "; ".join(
            f"{ids[k]:03d}: {scores[k]:.0f} deg, to others {spread[k]:.1f}, to default {to_default[k]:.1f}"
            f"{', conv ' + format(available[ids[k]]['p2m'], '.1f') if np.isfinite(available[ids[k]]['p2m']) else ''}"
            f"{' *' if k in res.pose_indices else ''}" for k in range(n)))
        if args.png_dir:
            from bodydata.viz.before_after import render_before_after
            from bodydata.viz.contact_sheet import render_contact_sheet

            k = res.pose_index
            shown = align(poses[k], target).apply(poses[k])
            path = render_before_after(
                Path(args.png_dir) / f"faust_subject{s}.png", tpl.faces, [shown, res.vertices, target],
                [f"source tr_reg_{ids[k]:03d}", "constructed neutral", "target (anny mean)"],
                up=axis_vector(tpl.up_axis), front=axis_vector(tpl.front_axis),
                suptitle=f"FAUST subject {s}: default neutral from {chosen}\nresidual to target "
                         f"{res.residual_before_mm:.0f} -> {res.residual_after_mm:.0f} mm RMS; single-pose neutrals: "
                         f"pairwise MED mean {pair.mean():.1f} mm",
            )
            # Every single-pose neutral, front view, to see what the pairwise MED is made of.
            sheet = render_contact_sheet(
                Path(args.png_dir) / f"faust_subject{s}_single_pose_neutrals.png",
                [(v, tpl.faces) for v in single], [f"from {ids[k]:03d} (to others {spread[k]:.0f} mm)" for k in range(n)],
                columns=5, view=-axis_vector(tpl.front_axis), up=axis_vector(tpl.up_axis),
                suptitle=f"FAUST subject {s}: neutral built from each source pose alone",
            )
            print(f"  png: {path}, {sheet.name}")

    if not all_pair:
        print("no subject had 2 converted poses")
        return
    print("overall:")
    print(f"  pairwise MED between single-pose neutrals of one subject (mm): {stats(np.concatenate(all_pair))}")
    print("    per-subject means: " + ", ".join(f"{p.mean():.1f}" for p in all_pair))
    print(f"  the same among the {args.best} best-scored poses of each subject (mm):  {stats(np.concatenate(all_best))}")
    print(f"  pairwise MED between posed inputs of one subject (mm):         {stats(np.concatenate(all_posed))}")
    print(f"  MED single-pose neutral vs the subject's default neutral (mm): {stats(np.concatenate(all_to_default))}")
    parts, part_shape, part_turn, part_twist = np.mean(all_parts, axis=0)
    print("  by part, mean over subjects of the single-pose-neutral pairwise distance (mm) / the same with the part "
          "aligned on its own (mm) / the part's own turn (deg) / of which twist about its long axis (deg): "
          + ", ".join(f"{tpl.part_names[j]} {parts[j]:.1f}/{part_shape[j]:.1f}/{part_turn[j]:.0f}/{part_twist[j]:.0f}"
                      for j in np.argsort(-parts)))
    if len(defaults) > 1:
        between = pairwise_med([defaults[s] for s in sorted(defaults)])
        print(f"  reference, pairwise MED between default neutrals of different subjects (mm): {stats(between)}")
    print(f"  joint-angle distance left, single-pose neutrals vs target (deg): {stats(np.concatenate(all_left))}")
    print(f"  seconds per subject, reading + one neutral per pose + default: {stats(sec_subject)}")
    print(f"  seconds per subject, default neutral ({tpl.n_vertices} vertices): {stats(sec_default)}")
    print(f"  seconds per single-pose neutral: {stats(sec_single)}")
    if incomplete:
        print("incomplete: " + "; ".join(incomplete))


if __name__ == "__main__":
    main()
