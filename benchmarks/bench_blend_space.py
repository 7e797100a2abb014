"""Where the skinning layer blends (dhnn ``blend_space``): scaled feature space (Eq. 9 as written) or raw, measured.

Builds one anny-lite dataset (1,229 vertices; --identities x --poses, subject split), trains dhnn once per blend
space with the same seed, epochs and data, and prints per run: test L1 of the scaled features (f, f_s, g) and the
test MED in mm of the meshes decoded from the encoder's codes (ACAP reconstruction, rigidly aligned to the true mesh).

    python benchmarks/bench_blend_space.py [--identities 10] [--poses 5] [--epochs 150] [--work /tmp/bench_blend]
"""
from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
import yaml


def build(work: Path, identities: int, poses: int) -> Path:
    from bodydata.dataset.build import build_dataset
    from bodydata.generator.synth import run_synth
    from bodydata.sources.scan import scan_source

    ds = work / "ds"
    if not (ds / "card.json").is_file():
        synth = run_synth(work / "synth", identities, poses, seed=11, topology="notoes_collapse10pc", sheet=False,
                          progress=False)
        scan_source("anny", synth.out_dir, work / "anny.csv", progress=False)
        build_dataset([work / "anny.csv"], "anny-lite", ds, split="subject", n_test_neutral=2, n_test_pose=4, seed=0,
                      progress=False)
    return ds


def test_med(run: Path, ds: Path) -> tuple[float, float]:
    """Mean MED (mm) over the test pose and neutral meshes, decoded from the encoder's codes."""
    from bodydata.dataset.format import read_pairs
    from bodydata.dataset.torch_dataset import BodyPairsDataset
    from bodydata.mesh import read_mesh
    from bodydata.mesh.alignment import mean_euclidean_distance
    from bodydata.model import load

    model = load(run, device="cpu")
    raw = BodyPairsDataset(ds, "test", scaled=False)
    pairs = {int(r["index"]): r for r in read_pairs(ds)}
    meds = {"pose": [], "neutral": []}
    for k in range(len(raw)):
        item = raw[k]
        e = model.encode(item["f"][None])
        v = model.vertices(*e)[0].detach().numpy() if model.disentangled else model.vertices(e)[0].detach().numpy()
        row = pairs[int(item["index"])]
        truth = read_mesh(row["path"]).vertices
        meds[row["role"]].append(1000 * mean_euclidean_distance(v, truth, rigid=True))
    return float(np.mean(meds["pose"])), float(np.mean(meds["neutral"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=10)
    ap.add_argument("--poses", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_blend"))
    args = ap.parse_args()
    from bodydata.train.trainer import train

    ds = build(args.work, args.identities, args.poses)
    print(f"dataset {ds}: {args.identities} identities x {args.poses} poses, anny-lite; {args.epochs} epochs each, "
          "batch 24, lr 1e-4, seed 0")
    for space in ("scaled", "raw"):
        run = args.work / f"run_{space}_{args.epochs}"
        cfg = args.work / f"{space}.yaml"
        cfg.write_text(yaml.safe_dump({"arch": "dhnn", "dhnn": {"blend_space": space}, "train": {"threads": args.threads}}))
        if not (run / "card.json").is_file() or '"epochs_finished": %d' % args.epochs not in (run / "card.json").read_text():
            t = time.perf_counter()
            train(ds, run, config=cfg, epochs=args.epochs, progress=False, resume=(run / "config.yaml").is_file())
            print(f"  trained {space} in {time.perf_counter() - t:.0f} s")
        with open(run / "metrics.csv", newline="") as fh:
            last = list(csv.DictReader(fh))[-1]
        pose, neutral = test_med(run, ds)
        print(f"blend {space:6s}: test L1 f {float(last['test_l1_f']):.4f}, f_s {float(last['test_l1_f_s']):.4f}, "
              f"g {float(last['test_l1_g']):.4f} (scaled); test MED pose {pose:.2f} mm, neutral {neutral:.2f} mm")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
