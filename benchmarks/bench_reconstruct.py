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


def forward_split(rec, x, repeat: int, threads: int) -> None:
    """The forward pass in parts (rhs assembly, solve), and the former path -- T (B, n, 3, 3) by
    ``gradients_from_features``, ``rhs`` on chunks of 8 meshes, ``solve`` -- against ``__call__``, interleaved in
    this process so that other load on the machine hits both alike."""
    import torch

    bsz = len(x)

    def former():
        b = torch.cat([rec.rhs(rec.gradients_from_features(x[s:s + 8])) for s in range(0, bsz, 8)])
        return rec.solve(b)

    t_rhs, t_solve, t_old, t_new = [], [], [], []
    with torch.no_grad():
        err = float((former() - rec(x)).abs().max())
        for _ in range(repeat):
            t0 = time.perf_counter()
            b = rec.rhs_from_features(x)
            t1 = time.perf_counter()
            rec.solve_vertex_major(b)
            t2 = time.perf_counter()
            former()
            t3 = time.perf_counter()
            rec(x)
            t4 = time.perf_counter()
            t_rhs.append(t1 - t0), t_solve.append(t2 - t1), t_old.append(t3 - t2), t_new.append(t4 - t3)
    ms = lambda v: 1000 * float(np.median(v)) / bsz  # noqa: E731
    print(f"  cpu/cholespy forward, {threads} thread(s), batch {bsz}, ms per mesh (median of {repeat}, interleaved): "
          f"rhs assembly {ms(t_rhs):.2f} + solve {ms(t_solve):.2f}; whole call {ms(t_new):.2f} vs former path "
          f"{ms(t_old):.2f} ({np.median(t_old) / np.median(t_new):.2f}x; max |difference| {err:.1e} m)")


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
        if device == "cpu" and backend == "cholespy":
            forward_split(rec, x, args.repeat, args.threads)
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
