"""Dataset build figures: feature throughput (meshes/s) inline and with 1 and 2 local dask workers, and size on disk.

Usage: python benchmarks/bench_dataset.py [--identities 4] [--poses 5] [--topology notoes] [--workers 1 2]
       [--keep DIR]

Generates ``identities x poses`` anny bodies (plus one neutral per identity) with ``bodydata synth anny``
(in the given topology; ``notoes`` = 12,272 vertices), scans them, then

* throughput: the per-mesh features (ACAP ``f`` + coarse ``g``) of all meshes into a fresh cache, inline
  (this process, ``compute_inline``) and through the pipeline orchestrator on a local dask cluster of 1 and
  2 worker processes (``orchestrated_runner``); cluster start-up and each process's one-time extractor
  build (template load) are timed separately and not counted; the ratio to the inline run is printed;
* size: a full ``build_dataset`` (paper split, 1 + 1 test pairs) reusing the inline cache; bytes of
  each file per 1,000 pairs, with and without the per-mesh feature cache.
Timings are wall clock on a shared machine: expect noise.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

TEMPLATES = {"notoes": "anny", "notoes_collapse10pc": "anny-lite"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=4)
    ap.add_argument("--poses", type=int, default=5)
    ap.add_argument("--topology", default="notoes", choices=sorted(TEMPLATES))
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one, removed)")
    args = ap.parse_args()

    from bodydata.pipeline.feature_runner import orchestrated_runner
    from bodydata.dataset.build import build_dataset, run_features
    from bodydata.dataset.mesh_features import (
        compute_inline,
        extractor_options,
        feature_options,
        get_extractor,
        template_digest,
    )
    from bodydata.dataset.pairing import pair_meshes, read_inputs
    from bodydata.fsutil import sha256_file
    from bodydata.pipeline.orchestrate import open_executor
    from bodydata.generator.synth import run_synth
    from bodydata.sources.scan import scan_source
    from bodydata.templates.template import load_template

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_dataset_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        run_synth(work / "synth", args.identities, args.poses, seed=0, topology=args.topology, sheet=False, progress=False)
        scan_source("anny", work / "synth", work / "anny.csv", progress=False)
        print(f"generated {args.identities} x {args.poses} bodies + {args.identities} neutrals "
              f"({args.topology}) in {time.perf_counter() - t:.1f} s")

        template = TEMPLATES[args.topology]
        tpl = load_template(template)
        opts = extractor_options()
        digest = template_digest(tpl, opts)
        recs, _ = read_inputs([work / "anny.csv"])
        meshes = pair_meshes(recs).meshes
        items = {sha256_file(m.path): m.path for m in meshes}
        role_of = {sha256_file(m.path): m.role for m in meshes}
        n = len(items)
        print(f"template {template}: {tpl.n_vertices} vertices; {n} meshes")

        rates: dict[str, float] = {}
        for w in [0] + list(args.workers):
            label = "inline" if w == 0 else f"{w} worker{'s' if w > 1 else ''}"
            cache = work / f"cache_{w}"
            shutil.rmtree(cache, ignore_errors=True)
            t0 = time.perf_counter()
            with open_executor("inline" if w == 0 else "local", workers=w, threads=1) as ex:
                # Build the extractor once in every process first (the one-time template load), so the rate
                # below is the steady state; the warm-up is reported as part of the start-up.
                if hasattr(ex, "client"):
                    ex.client.run(get_extractor, template, digest, opts)
                else:
                    get_extractor(template, digest, opts)
                startup = time.perf_counter() - t0
                t1 = time.perf_counter()
                fopts = feature_options(template, digest, opts)
                if w == 0:  # by role: neutral meshes are close to the template, which the features handle differently
                    for role in ("pose", "neutral"):
                        sub = {k: p for k, p in items.items() if role_of[k] == role}
                        t2 = time.perf_counter()
                        run_features(sub, cache, fopts, compute_inline, False)
                        dt = time.perf_counter() - t2
                        print(f"features     inline, {role:7s} meshes only: {len(sub)} in {dt:6.2f} s = "
                              f"{dt / max(1, len(sub)):.2f} s/mesh")
                    counts = run_features(items, cache, fopts, compute_inline, False)[0]
                    counts.computed = n
                else:
                    counts, failed = run_features(items, cache, fopts, orchestrated_runner(executor=ex), False)
                secs = time.perf_counter() - t1
            assert counts.computed == n, counts
            rates[label] = n / secs
            ratio = rates[label] / rates["inline"]
            print(f"features {label:>10s}: {n} meshes in {secs:6.2f} s = {rates[label]:6.2f} meshes/s "
                  f"(x{ratio:.2f} vs inline; start-up incl. extractor warm-up {startup:.1f} s not counted)")

        out = work / "dataset"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(work / "cache_0", out / "cache" / f"features-{digest[:16]}")
        res = build_dataset([work / "anny.csv"], template, out, split="paper", n_test_neutral=1, n_test_pose=1,
                            progress=False)
        assert res.features.cached == n and res.features.computed == 0
        p = res.n_pairs
        sizes = res.bytes_on_disk
        per_pair = ("f", "g", "neutral_index", "pairs")
        print(f"dataset: {p} pairs ({tpl.n_vertices} vertices); measured bytes per 1,000 pairs:")
        for k in per_pair + ("cache",):
            print(f"  {k:14s} {sizes[k] / p * 1000 / 1e6:10.2f} MB")
        total = sum(sizes[k] for k in per_pair)
        print(f"  {'total':14s} {total / p * 1000 / 1e6:10.2f} MB without the cache, "
              f"{(total + sizes['cache']) / p * 1000 / 1e6:.2f} MB with it")
        print("fixed size: " + ", ".join(f"{k} {sizes[k] / 1e6:.2f} MB" for k in sizes if k not in per_pair + ("cache",)))
        formula = tpl.n_vertices * 9 * 4 + 16 * 9 * 4 + 8
        print(f"formula (arrays only): {formula} bytes per pair = {formula * 1000 / 1e6:.2f} MB per 1,000 pairs")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
