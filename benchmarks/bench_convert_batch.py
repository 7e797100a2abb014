"""Throughput of batched conversion (Registrar.register_batch) against one-by-one registration, in one process.

    python benchmarks/bench_convert_batch.py [--template anny] [--prior PRIOR.npz | --components 40] --bodies 4 \
        --batch-sizes 2,4 [--device cuda] [--threads 1] [--config '{"coarse_iters": 20}'] [--json out.json]

The same N anny bodies (anny's 13,718-vertex default topology, landmarks carried from the template as in
``bench_convert.py``; truth = the same body in the template's connectivity) are converted first one after the
other with ``register`` and then in batches of B with ``register_batch``, for each B of ``--batch-sizes``.
Prints per mode: meshes/s, the ratio against the sequential run, MED to the truth (mean, max, and the largest
per-body difference from the sequential result: batching must not cost accuracy), peak RSS of the mode (the
process's high-water mark is reset before each mode through /proc/self/clear_refs; "process peak" when that
is not possible), the fraction of the optimisation time spent in the coarse stage (the batched part; the fine
stage solves per body) and, on CUDA, the mode's peak allocated GPU memory. ``--rounding-floor`` adds a
sequential run on inputs moved by 1e-12 m: L-BFGS amplifies rounding, and batched kernels round differently
from B = 1, so that run shows how large a batched-vs-sequential difference rounding alone makes. Without
``--prior`` a prior with ``--components`` components is built first from ``--prior-identities x
--prior-poses`` generated bodies.
Setup (template, prior, bodies, the Registrar's prefactored solves) is not timed; the first body's
registration in every mode includes its KD-tree construction, as in a real run.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")   # resets VmHWM, the peak resident set size (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--template", default="anny", help="template (anny = the 12,272-vertex notoes topology)")
    ap.add_argument("--prior", default=None, help="prior .npz (default: build one, see --components)")
    ap.add_argument("--components", type=int, default=40, help="K of the prior built here")
    ap.add_argument("--prior-identities", type=int, default=4)
    ap.add_argument("--prior-poses", type=int, default=3)
    ap.add_argument("--source-topology", default="anny", help="anny topology of the inputs (anny = 13,718 vertices)")
    ap.add_argument("--bodies", type=int, default=4, help="N bodies converted in every mode")
    ap.add_argument("--batch-sizes", default="2,4", help="comma-separated B values")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--config", default="{}", help="RegistrationConfig overrides as JSON")
    ap.add_argument("--rounding-floor", action="store_true",
                    help="also re-run the sequential mode on inputs moved by 1e-12 m: how far rounding-level "
                         "changes alone move each body's result (the scale of batched-vs-sequential differences)")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from bodydata.registration.metrics import med
    from bodydata.registration.prior import SparsePrior, build_prior
    from bodydata.registration.register import Registrar, RegistrationConfig
    from bodydata.generator.bodies import anny_bodies, transfer_landmarks
    from bodydata.templates.template import load_template

    t0 = time.perf_counter()
    tpl = load_template(args.template)
    topo = tpl.meta["anny_topology"]
    if args.prior:
        prior = SparsePrior.load(args.prior, n_vertices=tpl.n_vertices)
    else:
        from bodydata.features.acap import AcapExtractor

        train = anny_bodies(topo, args.prior_identities, args.prior_poses, seed=args.seed).vertices[topo]
        prior = build_prior(AcapExtractor(tpl.vertices, tpl.faces)(train).f, tpl.vertices, tpl.faces,
                            tpl.part_labels, args.components, tpl.name)
    reg = Registrar(tpl, prior, RegistrationConfig(device=args.device, **json.loads(args.config)))
    n_id = int(np.ceil(args.bodies / 2))
    bodies = anny_bodies(topo, n_id, 2, seed=args.seed, first_identity=20_000,
                         extra_topologies=(args.source_topology,))
    truths = bodies.vertices[topo][: args.bodies]
    srcs = bodies.vertices[args.source_topology][: args.bodies]
    src_faces = bodies.faces[args.source_topology]
    targets = [(s, src_faces, transfer_landmarks(tpl.landmarks, tr, s)) for s, tr in zip(srcs, truths)]
    setup_s = time.perf_counter() - t0
    cuda = reg.device.type == "cuda"
    print(json.dumps({"device": str(reg.device), "threads": torch.get_num_threads(), "template": tpl.name,
                      "n_vertices": tpl.n_vertices, "source_vertices": int(srcs.shape[1]), "K": prior.K,
                      "bodies": len(targets), "setup_s": round(setup_s, 1)}), flush=True)

    def run(batch: int, jitter: float = 0.0) -> dict:
        exact = _reset_peak_rss()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t1 = time.perf_counter()
        results = []
        todo = targets if not jitter else [(v + jitter * np.random.default_rng(k).choice([-1.0, 1.0], v.shape), f, lm)
                                           for k, (v, f, lm) in enumerate(targets)]
        for k in range(0, len(todo), batch):
            chunk = todo[k:k + batch]
            results += [reg.register(*chunk[0])] if batch == 1 else reg.register_batch(chunk)
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - t1
        meds = [1000 * med(r.vertices, tr) if r.status == "done" else float("nan") for r, tr in zip(results, truths)]
        coarse = [next(h[3] for h in r.history[::-1] if h[0] == "coarse") / r.history[-1][3]
                  for r in results if r.history]
        mode = ("sequential" if batch == 1 else f"batch {batch}") + (f", inputs +-{jitter:g} m" if jitter else "")
        row = {"mode": mode, "B": batch, "seconds": wall, "coarse_stage_fraction": float(np.mean(coarse)),
               "meshes_per_s": len(targets) / wall, "med_mm": meds, "med_mm_mean": float(np.nanmean(meds)),
               "med_mm_max": float(np.nanmax(meds)), "failed": sum(r.status != "done" for r in results),
               "iterations": [r.iterations for r in results],
               ("peak_rss_mib" if exact else "process_peak_rss_mib"): _peak_rss_mib()}
        if cuda:
            row["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
        return row

    rows = [run(1)]
    if args.rounding_floor:
        rows.append(run(1, 1e-12))
    for b in (int(v) for v in args.batch_sizes.split(",") if v.strip()):
        rows.append(run(b))
    base = rows[0]
    for row in rows:
        row["ratio_vs_sequential"] = row["meshes_per_s"] / base["meshes_per_s"]
        row["med_mm_max_diff_vs_sequential"] = float(np.nanmax(np.abs(np.subtract(row["med_mm"], base["med_mm"]))))
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else
                              [round(x, 3) for x in v] if k == "med_mm" else v) for k, v in row.items()}), flush=True)
    summary = {"device": str(reg.device), "threads": torch.get_num_threads(), "template": tpl.name,
               "n_vertices": tpl.n_vertices, "K": prior.K, "bodies": len(targets),
               **{f"{r['mode']}: meshes/s": round(r["meshes_per_s"], 4) for r in rows},
               **{f"{r['mode']}: ratio": round(r["ratio_vs_sequential"], 3) for r in rows[1:]}}
    from _summary import emit

    emit(summary, rows, args.json)


if __name__ == "__main__":
    main()
