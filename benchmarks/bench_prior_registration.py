"""The learned embedding against the sparse ACAP prior as the registration prior (paper §7's FAUST experiment), on anny
bodies with ground truth: the same held-out bodies in anny's 13,718-vertex topology converted to anny-lite by both.

    python benchmarks/bench_prior_registration.py [--run RUN] [--sparse-prior P.npz] [--test-identities 3]
        [--test-poses 2] [--identities 30 --poses 6 --epochs 200] [--work /tmp/bench_prior_reg] [--json out.json]

Without ``--run`` a dhnn is trained here on anny-lite bodies (``--identities x --poses``, subject split, ``--epochs``,
the trainer's default config: as ``benchmarks/bench_compare_archs.py``); without ``--sparse-prior`` the sparse prior
is built as the convert stage builds it (``prior_build.anny_training`` of 16 x 5 anny bodies, K = 200, falloff 0.05).
Test bodies: identities 20,000.. (never trained on by either prior), ``--test-poses`` perturbed key poses each, the
input in anny's default topology (13,718 vertices) with the template's landmarks carried over by nearest vertex.

Prints per body and prior: MED to the truth (mm, the template-connectivity body the generator made), point-to-mesh
both ways (converted -> input ``p2m``, input -> converted ``m2p``; mean, mm), seconds; the model's rows also give
the MED of the decoded mesh of its final codes put by the final similarity (``decoded_med_mm``: what the codes alone
explain, before the free vertices) and with ``--fit-truth`` of Eq. 15 fitted to the truth itself (``fit_med_mm``,
the best the decoder expresses). Then the means per prior.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _train_run(work: Path, identities: int, poses: int, epochs: int) -> Path:
    from bodydata.dataset.build import build_dataset
    from bodydata.generator.synth import run_synth
    from bodydata.sources.scan import scan_source
    from bodydata.train.trainer import train

    run = work / f"run_dhnn_{identities}x{poses}_{epochs}"
    if (run / "checkpoints" / "last.safetensors").is_file():
        return run
    ds = work / f"ds_{identities}x{poses}"
    if not (ds / "card.json").is_file():
        synth = run_synth(work / f"synth_{identities}x{poses}", identities, poses, seed=21,
                          topology="notoes_collapse10pc", sheet=False, progress=False)
        scan_source("anny", synth.out_dir, work / "anny.csv", progress=False)
        build_dataset([work / "anny.csv"], "anny-lite", ds, split="subject", n_test_neutral=min(3, identities - 1),
                      n_test_pose=min(3, identities - 1) * poses, seed=0, progress=False)
    t = time.perf_counter()
    train(ds, run, epochs=epochs, progress=False)
    print(f"trained dhnn ({identities} x {poses} bodies, {epochs} epochs) in {time.perf_counter() - t:.0f} s", flush=True)
    return run


def _sparse_prior(work: Path, tpl) -> Path:
    from bodydata.registration.prior_build import anny_training, build_priors

    dst = work / f"{tpl.name}_K200.npz"
    if not dst.is_file():
        t = time.perf_counter()
        build_priors(tpl, anny_training(tpl, 16, 5, seed=0), [200], dst, 0.05, measure=False)
        print(f"built the sparse prior (16 x 5 anny bodies, K=200) in {time.perf_counter() - t:.0f} s", flush=True)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None, help="a run folder of 'bodydata train' on anny-lite (default: train one)")
    ap.add_argument("--sparse-prior", default=None, help="anny-lite sparse prior .npz (default: build one)")
    ap.add_argument("--identities", type=int, default=30)
    ap.add_argument("--poses", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--test-identities", type=int, default=3)
    ap.add_argument("--test-poses", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_prior_reg"))
    ap.add_argument("--config", default="{}", help="ModelPriorConfig overrides as JSON")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fit-truth", action="store_true", help="also fit Eq. 15 to each truth (the decoder's limit)")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    import torch

    from bodydata.evaluate.fit import FitSettings, MeshFitter
    from bodydata.evaluate.prior_registration import ModelPriorConfig, ModelPriorRegistrar
    from bodydata.generator.bodies import anny_bodies, transfer_landmarks
    from bodydata.model import load
    from bodydata.registration.metrics import med, surface_distances
    from bodydata.registration.prior import SparsePrior
    from bodydata.registration.register import Registrar
    from bodydata.templates.template import load_template

    tpl = load_template("anny-lite")
    run = Path(args.run) if args.run else _train_run(args.work, args.identities, args.poses, args.epochs)
    prior_path = Path(args.sparse_prior) if args.sparse_prior else _sparse_prior(args.work, tpl)
    model = load(run, device=args.device)
    cfg = ModelPriorConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(args.config).items()})
    registrars = {"sparse": Registrar(tpl, SparsePrior.load(prior_path, n_vertices=tpl.n_vertices)),
                  "model": ModelPriorRegistrar(model, tpl, cfg)}
    fitter = MeshFitter(model, FitSettings(iterations=200)) if args.fit_truth else None
    topo = tpl.meta["anny_topology"]
    bodies = anny_bodies(topo, args.test_identities, args.test_poses, seed=args.seed, first_identity=20_000,
                         extra_topologies=("anny",))
    src_faces = bodies.faces["anny"]
    rows = []
    for b, name in enumerate(bodies.names):
        truth, src = bodies.vertices[topo][b], bodies.vertices["anny"][b]
        lm = transfer_landmarks(tpl.landmarks, truth, src)
        for prior, reg in registrars.items():
            res = reg.register(src, src_faces, lm)
            sd = surface_distances(res.vertices, tpl.faces, src, src_faces).summary()
            row = {"body": name, "prior": prior, "status": res.status, "med_mm": 1000 * med(res.vertices, truth),
                   "p2m_mean_mm": sd["p2m_mean_mm"], "m2p_mean_mm": sd["m2p_mean_mm"],
                   "p2m_p95_mm": sd["p2m_p95_mm"], "m2p_p95_mm": sd["m2p_p95_mm"], "seconds": res.seconds}
            if prior == "model":
                with torch.no_grad():
                    decoded = registrars["model"].decode(torch.as_tensor(res.w[None])).numpy()[0]
                row["decoded_med_mm"] = 1000 * med(res.scale * decoded @ res.rotation.T + res.translation, truth)
                if fitter is not None:
                    row["fit_med_mm"] = float(fitter.fit(truth[None]).med_mm[0])
            rows.append(row)
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    summary = {"template": tpl.name, "n_vertices": tpl.n_vertices, "run": str(run), "sparse_prior": str(prior_path),
               "device": str(model.device), "bodies": len(bodies.names),
               "input_vertices": int(bodies.vertices["anny"].shape[1])}
    from _summary import add_means, emit

    for prior in registrars:
        mine = [r for r in rows if r["prior"] == prior]
        add_means(summary, mine, ("med_mm", "p2m_mean_mm", "m2p_mean_mm", "p2m_p95_mm", "m2p_p95_mm", "seconds",
                                  "decoded_med_mm", "fit_med_mm"), prefix=f"{prior}_")
        summary[f"{prior}_done"] = sum(r["status"] == "done" for r in mine)
    emit(summary, rows, args.json)


if __name__ == "__main__":
    main()
