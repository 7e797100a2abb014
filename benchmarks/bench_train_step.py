"""Training-step speed of the embedding at full size (|V| = 12,272, batch 24) on this machine, against its own matmul peak.

Prints, for each optimiser variant: seconds per step (median of --steps after --warmup), the step's matmul work in
GFLOP, the fraction of this machine's float32 matmul throughput measured in the same process (the physical limit),
and the process's peak resident memory. The network is the paper's (dhnn, 134.6 M parameters at 12,272 vertices); the
part labels are synthetic (16 bands of vertices), which does not change the work.

    python benchmarks/bench_train_step.py [--vertices 12272] [--batch 24] [--steps 5] [--threads 2] [--arch dhnn]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time

import networkx as nx
import numpy as np
import torch


def matmul_peak(threads: int, size: int = 3072, reps: int = 6) -> float:
    """Best float32 GFLOP/s of a square matmul (the machine's practical ceiling)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size ** 3 / (time.perf_counter() - t) / 1e9)
    return best


def step_gflop(n: int, batch: int, arch: str) -> float:
    """Matmul work of one training step (forward + backward; the input layer needs no input gradient)."""
    d = 9 * n
    enc = 2 * batch * d * 400
    enc_bwd = enc  # weight gradient only
    wide = 2 * (2 * batch) * 800 * d  # T_d on the posed and the neutral codes
    small = 2 * batch * 400 * 400 * 2
    total = enc + enc_bwd + 3 * wide + 3 * small
    if arch == "dhnn":
        total += 3 * 2 * (2 * batch) * n * 16 * 9  # skinning W g
    return total / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vertices", type=int, default=12272)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--arch", default="dhnn")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from bodydata.dataset.format import PairBatch
    from bodydata.model.base import ModelContext
    from bodydata.model.losses import LossWeights
    from bodydata.model.registry import build_network, make_config
    from bodydata.model.skinning import skinning_mask
    from bodydata.train.noise import sample_noise
    from bodydata.train.trainer import train_step

    n, p, bsz = args.vertices, 16, args.batch
    labels = np.minimum(np.arange(n) * p // n, p - 1)
    mask = skinning_mask(labels, nx.path_graph(p), p)
    one, zero = np.ones((n, 9)), np.zeros((n, 9))
    ctx = ModelContext(n, p, labels, mask, one, zero, one, zero, np.ones((p, 9)), np.zeros((p, 9)), np.ones((p, 9)),
                       np.zeros((p, 9)))
    gen = torch.Generator().manual_seed(0)
    f = torch.rand(bsz, n, 9, generator=gen) * 1.9 - 0.95
    g = torch.rand(bsz, p, 9, generator=gen) * 1.9 - 0.95
    batch = PairBatch(f, g, f.flip(0), g.flip(0), torch.arange(bsz) < bsz // 2, torch.arange(bsz))
    peak = matmul_peak(torch.get_num_threads())
    work = step_gflop(n, bsz, args.arch)
    print(f"|V| = {n}, batch {bsz}, arch {args.arch}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"float32 matmul peak measured now: {peak:.0f} GFLOP/s; matmul work per step {work:.1f} GFLOP "
          f"(floor {work / peak:.3f} s)")
    for label, adam in (("Adam (torch default, foreach)", {"foreach": True}), ("Adam fused (bodydata)", {"fused": True})):
        torch.manual_seed(0)
        net = build_network(args.arch, make_config(args.arch, {}), ctx)
        params = sum(q.numel() for q in net.parameters())
        opt = torch.optim.Adam(net.parameters(), lr=1e-4, **adam)
        times = []
        for s in range(args.warmup + args.steps):
            eps = sample_noise(0, 0, s, list(range(bsz)), 122)
            t = time.perf_counter()
            train_step(net, batch, eps, LossWeights(), opt)
            if s >= args.warmup:
                times.append(time.perf_counter() - t)
        sec = statistics.median(times)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{label:32s} {params / 1e6:6.1f} M parameters: {sec:6.3f} s/step (min {min(times):.3f}), "
              f"{work / sec:6.0f} GFLOP/s = {100 * work / sec / peak:4.1f} % of matmul peak; peak RSS {rss:,.0f} MiB")
        del net, opt


if __name__ == "__main__":
    main()
