"""Conversion accuracy and speed on anny bodies with ground truth: the same bodies in anny's default 13,718-vertex
topology are converted to an anny template and compared vertex by vertex with the template-connectivity truth.

    python benchmarks/bench_convert.py --template anny --prior PRIOR.npz --identities 3 --poses 2 [--device cuda]

Prints per body: MED (mm), landmark error, point-to-mesh both ways (mean / p95, mm), iterations, seconds; then
means, the single-conversion time and (``--batch``) the throughput of converting the bodies one after the other
with one prepared Registrar (setup excluded). Landmarks on the 13,718-vertex bodies are the template's landmarks
carried over by nearest vertex on the same body (anny's default topology contains the notoes vertices up to
a few micrometres), i.e. exact "hand-marked" landmarks.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--template", default="anny")
    ap.add_argument("--prior", required=True)
    ap.add_argument("--source-topology", default="anny", help="anny topology of the inputs (anny = 13,718 vertices)")
    ap.add_argument("--identities", type=int, default=2)
    ap.add_argument("--poses", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--device", default=None)
    ap.add_argument("--config", default="{}", help="RegistrationConfig overrides as JSON, e.g. '{\"lambda_lan\": 10}'")
    ap.add_argument("--oracle", action="store_true", help="also report the MED of the truth's best w (prior limit)")
    ap.add_argument("--bodies", default=None, help="read pre-generated bodies (.npz written by --save-bodies)")
    ap.add_argument("--save-bodies", default=None, help="generate the bodies, write them to this .npz and stop")
    ap.add_argument("--first", type=int, default=None, help="with --bodies: use bodies first .. first+count-1")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from bodydata.registration.metrics import med, surface_distances
    from bodydata.registration.prior import SparsePrior
    from bodydata.registration.register import Registrar, RegistrationConfig
    from bodydata.generator.bodies import anny_bodies, transfer_landmarks
    from bodydata.templates.template import load_template

    tpl = load_template(args.template)
    topo = tpl.meta["anny_topology"]
    prior = SparsePrior.load(args.prior, n_vertices=tpl.n_vertices)
    t0 = time.perf_counter()
    reg = Registrar(tpl, prior, RegistrationConfig(device=args.device, **json.loads(args.config)))
    setup = time.perf_counter() - t0
    if args.bodies:  # pre-generated (no anny needed): vertices_<topo>, faces_<topo>, names
        z = np.load(args.bodies)
        from bodydata.generator.bodies import AnnyBodies

        bodies = AnnyBodies({t: z[f"vertices_{t}"] for t in (topo, args.source_topology)},
                            {t: z[f"faces_{t}"] for t in (topo, args.source_topology)}, list(z["names"]))
        if args.first is not None:
            sl = slice(args.first, args.first + args.count)
            bodies.vertices = {t: v[sl] for t, v in bodies.vertices.items()}
            bodies.names = bodies.names[sl]
    else:
        bodies = anny_bodies(topo, args.identities, args.poses, seed=args.seed, first_identity=20_000,
                             extra_topologies=(args.source_topology,))
    if args.save_bodies:
        np.savez(args.save_bodies, names=np.array(bodies.names),
                 **{f"vertices_{t}": v for t, v in bodies.vertices.items()}, **{f"faces_{t}": f for t, f in bodies.faces.items()})
        return
    src_faces = bodies.faces[args.source_topology]
    rows = []
    t_all = time.perf_counter()
    for b, name in enumerate(bodies.names):
        truth = bodies.vertices[topo][b]
        src = bodies.vertices[args.source_topology][b]
        lm = transfer_landmarks(tpl.landmarks, truth, src)
        res = reg.register(src, src_faces, lm)
        sd = surface_distances(res.vertices, tpl.faces, src, src_faces).summary()
        row = {"body": name, "status": res.status, "med_mm": 1000 * med(res.vertices, truth),
               "landmark_mm": 1000 * res.landmark_error, **sd, "iterations": res.iterations, "seconds": res.seconds}
        err = 1000 * np.linalg.norm(res.vertices - truth, axis=1)
        row["med_by_part_mm"] = {pn: round(float(err[tpl.part_labels == k].mean()), 2) for k, pn in enumerate(tpl.part_names)}
        if args.oracle:
            from bodydata.features.acap import AcapExtractor
            from bodydata.registration.prior import expression_med

            ex = AcapExtractor(tpl.vertices, tpl.faces)
            row["oracle_prior_med_mm"] = float(expression_med(prior, ex(truth).f, truth[None], tpl.vertices, tpl.faces)["med_mm"][0])
        rows.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    total = time.perf_counter() - t_all
    summary = {"device": str(reg.device), "template": tpl.name, "n_vertices": tpl.n_vertices, "K": prior.K,
               "bodies": len(rows), "setup_s": setup, "throughput_bodies_per_min": 60 * len(rows) / total}
    from _summary import add_means, emit

    add_means(summary, rows, ("med_mm", "landmark_mm", "p2m_mean_mm", "p2m_p95_mm", "m2p_mean_mm", "m2p_p95_mm",
                              "seconds"))
    summary["med_mm_max"] = float(np.max([r["med_mm"] for r in rows]))
    emit(summary, rows, args.json)


if __name__ == "__main__":
    main()
