"""Benchmark: Eq. 15 fit time per mesh with each solver (Levenberg–Marquardt and Adam, in the same process) and the
decoder time per mesh on this machine, and how close each fit gets to the best the decoder can express (each fit
refined by many more LM steps without early stop, the lower energy of the two kept).

    python benchmarks/bench_fit.py --run RUN --dataset DS [--batch 8] [--iterations 200] [--lm-iterations 10]
                                   [--refine 100] [--device cpu] [--per-role K] [--solvers adam,lm,lm:20:1]

Without --run/--dataset it builds a small anny-lite dataset (10 identities x 4 poses, 2 test identities) and trains
a small dhnn for 300 epochs in a temporary folder first (about 2 minutes on one core). Goals (issue #16): a test
mesh fitted to within 1 mm of the refined fit, in <= 2 s per mesh on the CPU. On a shared machine absolute seconds
are inflated by the load; the time ratios to the first of --solvers are measured in one process and are the figures
to compare. ``lm:STEPS:EVERY``: at most STEPS LM steps, an exact Jacobian every EVERY kept steps (Broyden between).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def tiny_run(root: Path) -> tuple[Path, Path]:
    from bodydata.dataset.build import build_dataset
    from bodydata.generator.synth import run_synth
    from bodydata.sources.scan import scan_source
    from bodydata.train.trainer import train

    synth = run_synth(root / "synth", 10, 4, seed=5, topology="notoes_collapse10pc", sheet=False, progress=False)
    scan_source("anny", synth.out_dir, root / "anny.csv", progress=False)
    build_dataset([root / "anny.csv"], "anny-lite", root / "ds", split="subject", n_test_neutral=2, n_test_pose=2,
                  seed=0, progress=False)
    (root / "tiny.yaml").write_text("dhnn: {encoder_widths: [64, 64], branch_widths: [64, 128]}\n")
    train(root / "ds", root / "run", config=root / "tiny.yaml", epochs=300, batch_size=6, progress=False)
    return root / "run", root / "ds"


def main() -> None:
    import torch

    from bodydata.evaluate.fit import FitSettings, MeshFitter
    from bodydata.evaluate.reconstruction import load_test_meshes
    from bodydata.model import load

    ap = argparse.ArgumentParser()
    ap.add_argument("--run")
    ap.add_argument("--dataset")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--lm-iterations", type=int, default=None, help="LM steps at most [default: FitSettings']")
    ap.add_argument("--refine", type=int, default=100)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--solvers", default="adam,lm",
                    help="comma-separated fits to compare: adam, lm, or lm:STEPS:EVERY (at most STEPS LM steps, an "
                         "exact Jacobian every EVERY kept steps, Broyden updates between); default adam,lm")
    ap.add_argument("--per-role", type=int, default=None,
                    help="fit this many meshes of each test set (neutral, pose; evenly spaced) instead of the first --batch")
    args = ap.parse_args()
    tmp = None
    if not (args.run and args.dataset):
        tmp = tempfile.TemporaryDirectory()
        args.run, args.dataset = tiny_run(Path(tmp.name))
    model = load(args.run, device=args.device)
    meshes = load_test_meshes(args.dataset, "test")
    def take(m) -> np.ndarray:  # --per-role: evenly spaced over the set, so several identities and poses
        return np.arange(len(m.f)) if args.per_role is None else np.unique(
            np.linspace(0, len(m.f) - 1, min(args.per_role, len(m.f))).round().astype(int))

    q = np.concatenate([m.vertices[take(m)] for m in meshes.values()])
    f = np.concatenate([m.f[take(m)] for m in meshes.values()])
    if args.per_role is None:  # the first --batch meshes (the neutral set comes first)
        q, f = q[: args.batch], f[: args.batch]
    fitter = MeshFitter(model, FitSettings())
    bsz, n = q.shape[:2]
    print(f"run {args.run} ({model.net.arch}), {n} vertices, batch {bsz}, device {args.device}, "
          f"torch threads {torch.get_num_threads()}")
    z = fitter.start_codes(q, f)
    with torch.no_grad():
        fitter.decode_vertices(z)  # warm-up (factorisation, allocations)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            fitter.decode_vertices(z)
            times.append(time.perf_counter() - t0)
    print(f"  decoder (codes -> features -> ACAP solve): {1000 * np.median(times) / bsz:.1f} ms per mesh")
    fits = {}
    for name in args.solvers.split(","):
        solver, *rest = name.strip().split(":")
        steps = int(rest[0]) if rest else (args.iterations if solver == "adam" else args.lm_iterations)
        every = int(rest[1]) if len(rest) > 1 else FitSettings().jacobian_every
        fitter_s = MeshFitter(model, FitSettings(iterations=steps, solver=solver, jacobian_every=every))
        t0 = time.perf_counter()
        fits[name] = fitter_s.fit(q, f)
        fits[name].seconds[:] = (time.perf_counter() - t0) / bsz
    # the best the decoder can express: each fit refined by many more LM steps (no early stop), the lower energy kept
    refine = MeshFitter(model, FitSettings(iterations=args.refine, tolerance=0.0, solver="lm", jacobian_every=1))
    refined = [refine.fit(q, start=r.z) for r in fits.values()]
    pick = np.argmin(np.stack([r.energy for r in refined]), 0)
    best = np.stack([r.vertices for r in refined])[pick, np.arange(bsz)]
    best_med = np.stack([r.med_mm for r in refined])[pick, np.arange(bsz)]
    print(f"  encoder start: MED {fits[next(iter(fits))].start_med_mm.mean():.2f} mm to the targets; refined ({args.refine} LM steps "
          f"from each fit, lower energy kept): MED {best_med.mean():.2f} mm to the targets")
    for solver, res in fits.items():
        gap = 1000.0 * np.linalg.norm(res.vertices - best, axis=-1).mean(1)
        print(f"  {solver:9s}: {res.seconds[0]:.2f} s per mesh, {res.iterations.mean():.0f} steps on average, "
              f"MED to the targets {res.med_mm.mean():.2f} mm, MED to the refined fit {gap.mean():.2f} mm "
              f"(max {gap.max():.2f}), energy / refined {np.mean(res.energy / np.min([r.energy for r in refined], 0)):.3f}")
    first = next(iter(fits))
    print("  time / " + first + " in this process: " + ", ".join(f"{k} {r.seconds[0] / fits[first].seconds[0]:.2f}x"
                                                             for k, r in fits.items()))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
