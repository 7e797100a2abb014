"""Speed of ``bodydata synth anny``: bodies per second at 12,272 vertices (notoes), by stage, and 1,000 bodies extrapolated.

Usage: python benchmarks/bench_synth.py [--identities 4] [--poses 16] [--topology notoes] [--batch-size 16]

Prints the time of each stage for one run of IDENTITIES x POSES bodies (anny forward pass, plausibility
checks with and without the Warp self-intersection test, PLY/JSON writing, contact sheet) and the
whole-run rate with the extrapolation to 1,000 bodies. Timings are wall-clock and noisy on a shared machine.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=4)
    ap.add_argument("--poses", type=int, default=16)
    ap.add_argument("--topology", default="notoes")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()

    import torch

    from bodydata.generator import poses as pose_library
    from bodydata.generator.synth import AnnySynth, run_synth, write_identity

    t = time.perf_counter()
    synth = AnnySynth(topology=args.topology, batch_size=args.batch_size, device=args.device)
    print(f"device {synth.device}, torch threads {torch.get_num_threads()}, topology {args.topology} "
          f"({synth.models[args.topology].template_vertices.shape[0]} vertices)")
    print(f"model build (cached anny data): {time.perf_counter() - t:.2f} s")

    phen = synth.phenotype(0, 0)
    rng = np.random.default_rng(0)
    names = list(pose_library.POSE_NAMES)
    for b in (1, 4, 16, 64):
        angles = np.stack([pose_library.perturb(pose_library.key_pose_vector(names[k % len(names)]), rng) for k in range(b)])
        synth.forward(phen, angles)  # warm-up
        reps = max(1, 32 // b)
        t = time.perf_counter()
        for _ in range(reps):
            out = synth.forward(phen, angles)
        dt = (time.perf_counter() - t) / reps
        print(f"forward pass batch {b:3d}: {dt * 1e3:8.1f} ms = {b / dt:7.1f} bodies/s")
    neutral = synth.forward(phen, None)
    v0, h0 = neutral["vertices"][0], neutral["bone_heads"][0]
    angles = np.stack([pose_library.key_pose_vector(names[k % len(names)]) for k in range(16)])
    out = synth.forward(phen, angles)
    coll = synth.collision
    t = time.perf_counter()
    synth.check(out["vertices"], out["bone_heads"], v0, h0)
    dt_all = (time.perf_counter() - t) / 16
    synth.collision = None
    t = time.perf_counter()
    synth.check(out["vertices"], out["bone_heads"], v0, h0)
    dt_cheap = (time.perf_counter() - t) / 16
    synth.collision = coll
    print(f"checks per body: bone lengths + edge stretch {dt_cheap * 1e3:.1f} ms, with self-intersection {dt_all * 1e3:.1f} ms")

    with tempfile.TemporaryDirectory() as tmp:
        ident = synth.identity(0, 0, 16)
        t = time.perf_counter()
        write_identity(__import__("pathlib").Path(tmp), synth, ident)
        print(f"writing per body (PLY + truth JSON): {(time.perf_counter() - t) / 16 * 1e3:.1f} ms")

    for check in (True, False):
        if not check:
            synth.collision = None
        with tempfile.TemporaryDirectory() as tmp:
            n = args.identities * args.poses
            s = run_synth(tmp, args.identities, args.poses, seed=1, synth=synth, progress=False, sheet=False)
            rate = n / s.seconds
            label = "with" if check else "without"
            print(f"full run {args.identities} x {args.poses} = {n} bodies {label} self-intersection check: "
                  f"{s.seconds:.1f} s = {rate:.2f} bodies/s (rejected samples {s.n_rejected}) "
                  f"-> 1,000 bodies ~ {1000 / rate / 60:.1f} min")
    synth.collision = coll
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        run_synth(tmp, 24, 1, seed=1, synth=synth, progress=False, sheet=True)
        print(f"24 x 1 run with contact sheet of 24 bodies: {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
