"""Table-2 style comparison of every architecture on one anny-lite set: same data, split, epochs and trainer.

Builds an anny-lite dataset (1,229 vertices; --identities x --poses, subject split), trains dhnn, baseline and meshvae
for --epochs with the paper's settings (batch 24, Adam 1e-4, the 16:6 λ schedule stretched to --epochs), fits pca,
then runs `bodydata evaluate` on all of them (Eq. 15 fit from the encoder's codes, --iterations steps; rigid
alignment) and prints the report's summary and disentanglement tables (MED in mm).

    python benchmarks/bench_compare_archs.py [--identities 30] [--poses 6] [--epochs 200] [--work /tmp/bench_archs]
"""
from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import yaml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=30)
    ap.add_argument("--poses", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--test-identities", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_archs"))
    args = ap.parse_args()

    from bodydata.dataset.build import build_dataset
    from bodydata.evaluate.evaluation import evaluate_runs
    from bodydata.evaluate.fit import FitSettings
    from bodydata.generator.synth import run_synth
    from bodydata.sources.scan import scan_source
    from bodydata.train.trainer import train

    w = args.work
    ds = w / "ds"
    if not (ds / "card.json").is_file():
        synth = run_synth(w / "synth", args.identities, args.poses, seed=21, topology="notoes_collapse10pc",
                          sheet=False, progress=False)
        scan_source("anny", synth.out_dir, w / "anny.csv", progress=False)
        build_dataset([w / "anny.csv"], "anny-lite", ds, split="subject", n_test_neutral=args.test_identities,
                      n_test_pose=args.test_identities * args.poses, seed=0, progress=False)
    runs = []
    for arch in ("dhnn", "baseline", "meshvae", "pca"):
        run = w / f"run_{arch}_{args.epochs}"
        cfg = w / f"{arch}.yaml"
        cfg.write_text(yaml.safe_dump({"arch": arch, "train": {"checkpoint_every": 50, "test_every": 10}}))
        finished = (run / "metrics.csv").is_file() and (run / "checkpoints" / "last.state.pt").is_file() and (
            arch == "pca" or len((run / "metrics.csv").read_text().splitlines()) - 1 >= args.epochs)
        if not finished:  # a run cut short is resumed
            t = time.perf_counter()
            train(ds, run, config=cfg, epochs=args.epochs, progress=False,
                  resume=(run / "config.yaml").is_file())
            print(f"trained {arch} in {time.perf_counter() - t:.0f} s", flush=True)
        runs.append(run)
    t = time.perf_counter()
    ev = evaluate_runs(runs, ds, w / f"report_{args.epochs}", FitSettings(iterations=args.iterations), figures=True)
    print(f"evaluated in {time.perf_counter() - t:.0f} s; report {w / f'report_{args.epochs}' / 'report.md'}")
    print(f"data: anny-lite {args.identities} identities x {args.poses} poses, subject split "
          f"({args.test_identities} test identities); {args.epochs} epochs; alignment rigid")
    for name in ("summary.csv", "disentangle.csv"):
        with open(w / f"report_{args.epochs}" / name, newline="") as fh:
            rows = list(csv.DictReader(fh))
        keys = [k for k in ("run", "arch", "set", "test", "codes", "count", "mean", "median", "p95", "within",
                            "between", "ratio") if rows and k in rows[0]]
        print(" | ".join(keys))
        for r in rows:
            print(" | ".join(str(r.get(k, "")) for k in keys))
    if ev.n_failed:
        print("failed runs:", [r.error for r in ev.runs if r.error])


if __name__ == "__main__":
    main()
