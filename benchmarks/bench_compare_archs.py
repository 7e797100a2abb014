"""Table-2 style comparison of every architecture on one anny-lite set: same data, split, epochs and trainer.

Builds an anny-lite dataset (1,229 vertices; --identities x --poses, subject split, --test-identities of them held
out with all their poses), trains dhnn, baseline and meshvae with one config (the paper's settings: batch 24, Adam,
the 16:6 λ schedule stretched to --epochs; --lr and --config change them for every architecture alike), fits pca,
then runs `bodydata evaluate` on all of them (Eq. 15 fit from the encoder's codes, the solver's default steps; rigid
alignment) and prints the summary and disentanglement tables (MED in mm), the data, split, epochs and times.

    python benchmarks/bench_compare_archs.py [--identities 30] [--poses 6] [--test-identities 3] [--epochs 200]
        [--lr 1e-4] [--threads 1] [--config EXTRA.yaml] [--archs dhnn,baseline,meshvae,pca] [--work /tmp/bench_archs]

--config is a run config (docs/training.md) whose sections apply to every architecture; the benchmark adds the
architecture, --lr and --threads. Runs are named run_<arch>_<epochs>[_<tag>] (--tag), so probes with other settings
sit beside each other; a run cut short is resumed. benchmarks/configs/table2_anny_lite.yaml is the protocol of the
"Table 2 on anny-lite" section of docs/evaluate.md.
"""
from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import yaml

ARCHS = ("dhnn", "baseline", "meshvae", "pca")


def run_config(arch: str, extra: dict, lr: float | None, threads: int) -> dict:
    """The config every architecture gets: ``extra``'s sections, then arch, lr and threads on top."""
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in extra.items()}
    cfg["arch"] = arch
    loop = dict(cfg.get("train") or {})
    loop.setdefault("checkpoint_every", 50)
    loop.setdefault("test_every", 10)
    if lr is not None:
        loop["lr"] = lr
    loop["threads"] = threads
    cfg["train"] = loop
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=30)
    ap.add_argument("--poses", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--iterations", type=int, default=None, help="fit steps at most (default: the solver's own)")
    ap.add_argument("--test-identities", type=int, default=3)
    ap.add_argument("--lr", type=float, default=None, help="Adam's lr for every architecture (default: the config's)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads of each training (0: torch's default)")
    ap.add_argument("--config", type=Path, default=None, help="run config applied to every architecture")
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--tag", default="", help="suffix of the run folders (probes with other settings)")
    ap.add_argument("--no-evaluate", action="store_true", help="train only")
    ap.add_argument("--report", default=None, help="report folder name under --work [report_<epochs>[_<tag>]]")
    ap.add_argument("--markers", action="store_true", help="also the sparse-marker fits (Table 5; slow)")
    ap.add_argument("--no-body-model", action="store_true", help="skip the row of anny itself fitted to the meshes")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_archs"))
    args = ap.parse_args()
    archs = [a for a in args.archs.split(",") if a]
    extra = yaml.safe_load(args.config.read_text()) if args.config else {}

    from bodydata.dataset.build import build_dataset
    from bodydata.evaluate.evaluation import evaluate_runs
    from bodydata.evaluate.fit import FitSettings
    from bodydata.generator.synth import run_synth
    from bodydata.sources.scan import scan_source
    from bodydata.train.trainer import train

    w = args.work
    ds = w / "ds"
    w.mkdir(parents=True, exist_ok=True)
    if not (ds / "card.json").is_file():
        t = time.perf_counter()
        synth = run_synth(w / "synth", args.identities, args.poses, seed=21, topology="notoes_collapse10pc",
                          sheet=False, progress=False)
        scan_source("anny", synth.out_dir, w / "anny.csv", progress=False)
        build_dataset([w / "anny.csv"], "anny-lite", ds, split="subject", n_test_neutral=args.test_identities,
                      n_test_pose=args.test_identities * args.poses, seed=0, progress=False)
        print(f"built the dataset in {time.perf_counter() - t:.0f} s", flush=True)
    suffix = f"_{args.tag}" if args.tag else ""
    runs, times = [], {}
    for arch in archs:
        run = w / f"run_{arch}_{args.epochs}{suffix}"
        cfg = w / f"{arch}{suffix}.yaml"
        cfg.write_text(yaml.safe_dump(run_config(arch, extra, args.lr, args.threads), sort_keys=False))
        finished = (run / "metrics.csv").is_file() and (run / "checkpoints" / "last.state.pt").is_file() and (
            arch == "pca" or len((run / "metrics.csv").read_text().splitlines()) - 1 >= args.epochs)
        if not finished:  # a run cut short is resumed
            t = time.perf_counter()
            resume = (run / "config.yaml").is_file()  # a resumed run keeps its own config.yaml
            train(ds, run, config=None if resume else cfg, epochs=args.epochs, progress=False, resume=resume)
            times[arch] = time.perf_counter() - t
            print(f"trained {arch} in {times[arch]:.0f} s", flush=True)
        runs.append(run)
    if args.no_evaluate:
        return
    report = w / (args.report or f"report_{args.epochs}{suffix}")
    t = time.perf_counter()
    ev = evaluate_runs(runs, ds, report, FitSettings(iterations=args.iterations), figures=True,
                       markers="landmarks" if args.markers else None, body_model=not args.no_body_model)
    print(f"evaluated in {time.perf_counter() - t:.0f} s; report {report / 'report.md'}")
    print(f"data: anny-lite {args.identities} identities x {args.poses} poses, subject split "
          f"({args.test_identities} test identities with all their poses); {args.epochs} epochs; lr "
          f"{args.lr if args.lr is not None else 'of the config'}; alignment rigid")
    for name in ("summary.csv", "disentangle.csv"):
        with open(report / name, newline="") as fh:
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
