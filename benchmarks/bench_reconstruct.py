"""Benchmark: ACAP -> mesh for a batch of 64 bodies (12,272-vertex anny), per mesh, CPU (cholespy and scipy) and
CUDA when present; factorisation time, backward time, peak memory.

    python benchmarks/bench_reconstruct.py [--batch 64] [--repeat 5] [--threads 1]

Goal: <= 5 ms per mesh on CPU in a batch of 64.
"""
from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import torch

    from bodydata.features.acap import AcapExtractor
    from bodydata.features.reconstruct import AcapReconstructor

    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--topology", default="notoes")
    ap.add_argument("--data", default=None,
                    help="npz with template 'vertices', 'faces' and features 'f' (instead of posing anny here); "
                         "--save-data writes one")
    ap.add_argument("--save-data", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.data:
        with np.load(args.data) as z:
            verts, faces, f = z["vertices"][None], z["faces"], z["f"]
    else:
        from bench_acap import anny_bodies

        verts, faces = anny_bodies(args.topology)
        f = AcapExtractor(verts[0], faces)(verts).f
        if args.save_data:
            np.savez(args.save_data, vertices=verts[0], faces=faces, f=f)
            return
    rng = np.random.default_rng(0)
    batch = f[rng.integers(0, len(f), args.batch)] + 1e-3 * rng.normal(size=(args.batch,) + f.shape[1:])
    n = len(verts[0])
    devices = [("cpu", "cholespy"), ("cpu", "scipy")] + ([("cuda", "cholespy")] if torch.cuda.is_available() else [])
    import resource

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS before the solvers: {rss0:.0f} MiB")
    for device, backend in devices:
        t0 = time.perf_counter()
        rec = AcapReconstructor(verts[0], faces, device=device, backend=backend)
        if device == "cuda":
            torch.cuda.synchronize()
        t_build = time.perf_counter() - t0
        x = torch.as_tensor(batch, device=device)
        rec(x)  # warm up
        ts = []
        for _ in range(args.repeat):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.no_grad():
                rec(x)
            if device == "cuda":
                torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
        xg = x.clone().requires_grad_(True)
        tb = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = rec(xg)
            out.square().sum().backward()
            if device == "cuda":
                torch.cuda.synchronize()
            tb.append(time.perf_counter() - t0)
            xg.grad = None
        med = float(np.median(ts))
        print(f"{device}/{backend} ({args.threads} thread(s) on CPU), n={n}: build+factorise {t_build:.3f} s; "
              f"batch of {args.batch}: {med:.3f} s = {1000 * med / args.batch:.2f} ms per mesh (median of {args.repeat}); "
              f"forward+backward {1000 * np.median(tb) / args.batch:.2f} ms per mesh")
        if device == "cpu":
            print(f"  process peak RSS so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
            tracemalloc.start()
            with torch.no_grad():
                rec(x)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"  peak traced numpy memory of the batch call: {peak / 2**20:.1f} MiB "
                  f"(the batch's f is {batch.nbytes / 2**20:.1f} MiB; torch tensors are not traced)")
        else:
            torch.cuda.reset_peak_memory_stats()
            with torch.no_grad():
                rec(x)
            print(f"  CUDA peak memory of the batch call: {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
