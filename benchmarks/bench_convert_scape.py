"""Conversion accuracy of the ``scape`` profile: held-out 12,500-vertex SCAPE-order bodies, remeshed, converted back, compared vertex by vertex.

    python benchmarks/bench_convert_scape.py --shared ../shared/data [--holdout all] [--K 150] [--json out.json]
    python benchmarks/bench_convert_scape.py --holdout dhnn_0,dhnn_1,dhnn_2,dhnn_3,dhnn_4,dhnn_5,dhnn_6,dhnn_7 \
        --weighting cotangent --lift-scape \
        --landmark-pairs ../shared/data/dhnn/bodyrep_corres.txt --config '{"fine_landmark_scale": [1.0], "hand_weight": 0.3}' \
        --exclude-vids ../shared/data/dhnn/body_finger_ear_vids.txt --threads 1
        # the recommended scape prior and landmarks (docs/templates.md)

What it does, all from the files under ``--shared`` (nothing is written outside a temporary folder):

1. builds the ``scape`` template (SCAPE ``mesh000`` vertices, the paper's faces from
   ``dhnn/template_connectivity/0.obj``, SPRING's ``body_part.obj`` parts, the shipped ``scape_12500``
   landmarks) into a temporary folder and loads it back;
2. collects every 12,500-vertex SCAPE-order body available: SCAPE ``original_12500`` mesh000/002/055, the
   paper's ``dhnn/template_connectivity`` 0..7, SPRING's male and female mean bodies (13; SPRING's PCA shape
   basis files are absent from the shared copy, so no bodies can be sampled), each rigidly aligned onto the
   template (Kabsch; SPRING's means sit in another frame) for their ACAP features;
3. for each held-out body (``--holdout``; never ``scape_mesh000``, the template itself): builds a prior
   (:func:`bodydata.registration.prior.build_prior`, ``--K`` components) from the ACAP features of all the
   *other* bodies (leave-one-out: 12 training bodies; ``--train`` restricts them), remeshes the body in its
   original frame (:func:`bodydata.registration.remesh.remesh_body`: jittered midpoint subdivision, about
   50,000 vertices, shuffled order; landmarks = the remeshed vertex nearest each template landmark vertex),
   converts it with :class:`bodydata.registration.register.Registrar` and compares the result with the
   original body vertex by vertex.

Prints one JSON line per body -- MED (mm, mean |converted_i - original_i|), the MED of the landmark-only
similarity (the rigid start, for scale), point-to-mesh both ways (mean / p95, mm), landmark error, landmark
offset of the remesh, seconds, per-part MED -- then the means. ``--oracle`` adds the MED of the held-out
body's best prior coefficients and its ACAP round trip (what the prior alone can express; both after the best
translation only). ``--articulations ANGLE`` adds 48 synthetic training features (each part turned rigidly
about each axis) to every prior. ``--weighting cotangent`` fits the prior's features, E_prior and the
reconstruction with clamped cotangent edge weights (the ACAP authors' weights shrink SCAPE-order bodies 2-5 % in
the round trip). ``--lift-scape`` adds SCAPE's 71 poses, carried from the shared 2,161-vertex simplification onto
mesh000 (:mod:`bodydata.registration.lift`), minus the held-out body's own pose. ``--save DIR`` writes each
converted body and its truth. ``--landmark-pairs FILE`` adds the pair file's template column (the paper's 79
landmarks) to the template's landmarks; ``--exclude-vids FILE`` also reports the MED without those vertices (the
paper's fingers and ears). The registration uses ``RegistrationConfig`` defaults unless ``--config``. One torch
thread (``--threads 1``) is several times faster than two when anything else runs on a 2-core machine.

Measured 2026-11-26 (2 cores, busy), MED per held-out paper body dhnn_0..7: 8.7 5.3 9.0 8.3 4.0 10.0 10.9 17.2 mm
(mean 9.2) with the 12-body ACAP-weighted prior; 9.9 8.2 7.0 3.9 4.0 8.4 9.1 10.0 (mean 7.6) with cotangent
weights and the lifted poses; scape_mesh002 5.3 mm, scape_mesh055 (a deep forward bend) 22 mm. With the paper's 79
landmark pairs, the shipped thumb tips and full-weight landmarks: 5.1 4.8 4.1 3.1 3.1 5.1 6.2 8.0 (mean 4.92; 4.55
without the paper's finger and ear vertices), scape_mesh002 3.3, scape_mesh055 9.4, spring_male 6.4 mm; with hands at
0.3 ICP weight too (the command above): 5.0 4.9 4.1 3.1 3.1 4.8 5.6 7.9 (mean 4.81; 4.51 without fingers and ears).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

BODIES = (["scape_mesh000", "scape_mesh002", "scape_mesh055"] + [f"dhnn_{i}" for i in range(8)]
          + ["spring_male", "spring_female"])


def scape_bodies(shared: Path) -> dict[str, np.ndarray]:
    """{name: (12500, 3) float64} every SCAPE-order body of the shared data folder, in its own frame."""
    from bodydata.mesh import read_mesh

    out = {}
    for name in BODIES:
        kind, _, stem = name.partition("_")
        if kind == "scape":
            path = shared / "scape" / "original_12500" / f"{stem}.off"
            out[name] = read_mesh(path, expected_vertices=12500, check_degenerate=False).vertices
        elif kind == "dhnn":
            out[name] = read_mesh(shared / "dhnn" / "template_connectivity" / f"{stem}.obj",
                                  expected_vertices=12500).vertices
        else:
            out[name] = np.load(shared / "spring" / "release_model" / f"{stem}_mean_vertex.npy").astype(np.float64)
    return out


def build_scape(shared: Path, folder: Path):
    """Build the scape template from the shared files into ``folder`` and load it back."""
    from bodydata.templates.template import build_template, load_template

    tpl = build_template("scape", {
        "mesh": shared / "scape" / "original_12500" / "mesh000.off",
        "faces": shared / "dhnn" / "template_connectivity" / "0.obj",
        "labels": shared / "spring" / "data" / "body_part.obj",
    })
    tpl.save(folder)
    return load_template(folder)


def lifted_scape_poses(shared: Path, mesh000: np.ndarray, template_vertices: np.ndarray):
    """SCAPE's 71 poses in the 12,500-vertex order: the shared 2,161-vertex poses carried onto ``mesh000`` by a cage
    fitted on pose 1 (``1.obj`` is mesh000's pose), each rigidly aligned onto the template.

    Returns ((71, 12500, 3) float64 bodies, (71,) int64 pose numbers 1..71)."""
    from bodydata.mesh import read_mesh
    from bodydata.mesh.alignment import align
    from bodydata.registration.lift import CageLift

    folder = shared / "scape" / "simplified_2161"
    coarse = [read_mesh(folder / f"{k}.obj", expected_vertices=2161) for k in range(1, 72)]
    lift = CageLift.fit(coarse[0].vertices, coarse[0].faces, mesh000, smooth=1)
    bodies = lift(np.stack([c.vertices for c in coarse]))
    return align(bodies, template_vertices).apply(bodies), np.arange(1, 72)


def articulation_features(tpl, angle: float, falloff: float) -> np.ndarray:
    """(48, n, 9) float64 ACAP features of the template with one part turned rigidly by ``angle`` radians about one
    coordinate axis (rotation log ``r = angle * s_k(v) * e_axis``, stretch I; ``s_k`` the prior's part weights)."""
    from bodydata.registration.prior import identity_feature, part_weights

    pw = part_weights(tpl.vertices, tpl.faces, tpl.part_labels, falloff)
    out = np.repeat(identity_feature(tpl.n_vertices)[None], pw.shape[1] * 3, axis=0)
    for k in range(pw.shape[1]):
        for a in range(3):
            out[3 * k + a, :, a] = angle * pw[:, k]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default="../shared/data", help="the shared data folder")
    ap.add_argument("--holdout", default="scape_mesh002,scape_mesh055,dhnn_1,dhnn_5,spring_male",
                    help="comma list of bodies to convert, or 'all' (every body but the template's mesh000)")
    ap.add_argument("--train", default=None, help="comma list: train the priors on these bodies only "
                                                   "(minus the held-out one); default all others")
    ap.add_argument("--K", type=int, default=150, help="prior components (at most the available ones)")
    ap.add_argument("--falloff", type=float, default=0.05)
    ap.add_argument("--articulations", type=float, default=0.0,
                    help="radians; > 0 adds 48 synthetic training features: each part rotated rigidly about each "
                         "coordinate axis by this angle (blended by the prior's part weights), to widen the pose span "
                         "of a 12-body prior")
    ap.add_argument("--weighting", default="acap", choices=["acap", "cotangent"],
                    help="edge weighting of the prior's features, E_prior and reconstruction")
    ap.add_argument("--lift-scape", action="store_true",
                    help="add SCAPE's 71 poses (shared 2,161-vertex simplification) lifted onto mesh000 by a cage "
                         "(bodydata.registration.lift) to every prior, minus the held-out body's own pose")
    ap.add_argument("--lift-weight", type=float, default=1.0,
                    help="weight of each lifted pose in the prior's per-part SVD (its deviation from the template is "
                         "scaled by this), to keep 70 poses of one subject from outranking the other bodies")
    ap.add_argument("--landmark-pairs", default=None,
                    help="pair file whose first column lists template vertex ids (the paper's 79 SCAPE<->SMPL pairs: "
                         "dhnn/bodyrep_corres.txt): added to the template's landmarks as pair_00, pair_01, ... (each "
                         "remeshed body gets them like the others: its vertex nearest the true one)")
    ap.add_argument("--exclude-vids", default=None,
                    help="file of template vertex ids (the paper's fingers and ears, dhnn/body_finger_ear_vids.txt: "
                         "828 vertices its registration leaves out of ICP): also report the MED without them")
    ap.add_argument("--seed", type=int, default=0,
                    help="remesh seed: a body uses seed + its index in BODIES (the same remesh in any --holdout list)")
    ap.add_argument("--config", default="{}", help="RegistrationConfig overrides as JSON")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--oracle", action="store_true", help="also the prior's best-w MED and the ACAP round trip")
    ap.add_argument("--json", default=None, help="write the figures here")
    ap.add_argument("--save", default=None, help="folder: write each converted body and its truth (.ply) here")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from bodydata.features.acap import AcapExtractor
    from bodydata.mesh.alignment import align
    from bodydata.registration.metrics import med, surface_distances
    from bodydata.registration.prior import build_prior, expression_med
    from bodydata.registration.register import Registrar, RegistrationConfig, similarity_from_points
    from bodydata.registration.remesh import remesh_body

    shared = Path(args.shared)
    holdout = list(BODIES[1:]) if args.holdout == "all" else [s.strip() for s in args.holdout.split(",") if s.strip()]
    unknown = [b for b in holdout if b not in BODIES] + [b for b in (args.train or "").split(",") if b and b not in BODIES]
    if unknown:
        ap.error(f"unknown bodies {unknown}; known: {BODIES}")
    if "scape_mesh000" in holdout:
        ap.error("scape_mesh000 is the template itself; hold out another body")
    cfg_over = json.loads(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        tpl = build_scape(shared, Path(tmp) / "scape")
    if args.landmark_pairs:
        from bodydata.templates.landmarks import read_landmark_pairs

        tpl.landmarks.update(read_landmark_pairs(args.landmark_pairs, n_template=tpl.n_vertices)[0])
    raw = scape_bodies(shared)
    names = list(raw)
    aligned = np.stack([align(raw[n], tpl.vertices).apply(raw[n]) for n in names])
    t0 = time.perf_counter()
    extractor = AcapExtractor(tpl.vertices, tpl.faces, weighting=args.weighting)
    feats = extractor(aligned).f
    lifted_feats, lifted_pose = feats[:0], np.zeros(0, np.int64)
    if args.lift_scape:
        lifted, lifted_pose = lifted_scape_poses(shared, raw["scape_mesh000"], tpl.vertices)
        lifted_feats = extractor(lifted).f
    print(f"template: {tpl.n_vertices} vertices, {tpl.n_faces} faces, {len(tpl.landmarks)} landmarks; "
          f"ACAP features of {len(names)} bodies in {time.perf_counter() - t0:.1f} s", flush=True)
    extra = articulation_features(tpl, args.articulations, args.falloff) if args.articulations > 0 else feats[:0]
    train_pool = [s.strip() for s in args.train.split(",")] if args.train else names
    rows = []
    keep = np.ones(tpl.n_vertices, bool)
    if args.exclude_vids:
        keep[np.loadtxt(args.exclude_vids, dtype=np.int64, ndmin=1)] = False
    for name in holdout:
        train = [names.index(n) for n in train_pool if n != name]
        h = names.index(name)
        # SCAPE pose k (1-based file k.obj) is original mesh k - 1: never train on the held-out body's own pose
        own = int(name.split("mesh")[1]) + 1 if name.startswith("scape_mesh") else -1
        lift_keep = lifted_feats[lifted_pose != own]
        if args.lift_weight != 1.0:
            from bodydata.registration.prior import identity_feature

            off = identity_feature(tpl.n_vertices)[None]
            lift_keep = off + args.lift_weight * (lift_keep - off)
        prior = build_prior(np.concatenate([feats[train], extra, lift_keep]), tpl.vertices, tpl.faces,
                            tpl.part_labels, args.K, "scape", args.falloff, weighting=args.weighting)
        truth = raw[name]
        target = remesh_body(truth, tpl.faces, tpl.landmarks, seed=args.seed + BODIES.index(name))
        reg = Registrar(tpl, prior, RegistrationConfig(device=args.device, **cfg_over))
        res = reg.register(target.vertices, target.faces, target.landmarks)
        lm = [k for k in tpl.landmarks if k not in reg.config.ignore_landmarks]
        s, r, t = similarity_from_points(tpl.vertices[[tpl.landmarks[k] for k in lm]],
                                         target.vertices[[target.landmarks[k] for k in lm]])
        row = {"body": name, "n_train": len(train), "n_articulations": len(extra), "n_lifted": len(lift_keep),
               "weighting": args.weighting, "K": prior.K,
               "target_vertices": len(target.vertices),
               "status": res.status, "reason": res.reason, "med_mm": 1000 * med(res.vertices, truth),
               "rigid_start_med_mm": 1000 * med(s * tpl.vertices @ r.T + t, truth),
               "landmark_mm": 1000 * res.landmark_error, "remesh_landmark_offset_mm": 1000 * target.landmark_offset}
        row.update(surface_distances(res.vertices, tpl.faces, target.vertices, target.faces).summary())
        row.update(iterations=res.iterations, seconds=res.seconds)
        if args.save:
            from bodydata.mesh import write_mesh

            Path(args.save).mkdir(parents=True, exist_ok=True)
            write_mesh(Path(args.save) / f"{name}_converted.ply", res.vertices, tpl.faces)
            write_mesh(Path(args.save) / f"{name}_truth.ply", truth, tpl.faces)
        err = 1000 * np.linalg.norm(res.vertices - truth, axis=1)
        if args.exclude_vids:
            row["med_excluded_mm"] = float(err[keep].mean())
        row["med_by_part_mm"] = {pn: round(float(err[tpl.part_labels == k].mean()), 1)
                                 for k, pn in enumerate(tpl.part_names)}
        if args.oracle:
            em = expression_med(prior, feats[[h]], aligned[[h]], tpl.vertices, tpl.faces)
            row["oracle_prior_med_mm"] = float(em["med_mm"][0])
            row["acap_roundtrip_med_mm"] = float(em["floor_mm"][0])
        rows.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        if args.json:  # rewritten after every body: a long run that is stopped keeps its rows
            with open(args.json, "w") as fh:
                json.dump({"rows": rows}, fh, indent=1)
    ok = [r for r in rows if r["status"] == "done"]
    summary = {"device": str(reg.device), "bodies": len(rows), "ok": len(ok), "K": args.K, "config": cfg_over}
    from _summary import add_means, emit

    add_means(summary, rows, ("med_mm", "med_excluded_mm", "rigid_start_med_mm", "landmark_mm", "p2m_mean_mm", "p2m_p95_mm", "m2p_mean_mm",
                              "m2p_p95_mm", "seconds")
              + (("oracle_prior_med_mm", "acap_roundtrip_med_mm") if args.oracle else ()), prefix="mean_")
    summary["max_med_mm"] = float(np.max([r["med_mm"] for r in rows]))
    summary["bodies_med_le_5mm"] = int(sum(r["med_mm"] <= 5.0 for r in rows))
    emit(summary, rows, args.json)


if __name__ == "__main__":
    main()
