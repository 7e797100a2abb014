"""``bodydata prior build``, ``bodydata convert`` and ``bodydata benchmark correspondence``: connectivity conversion."""
from __future__ import annotations

import json

import click


@click.group("prior")
def prior() -> None:
    """Sparse part-based ACAP deformation priors for connectivity conversion."""


def _ks(value: str) -> list[int]:
    try:
        ks = [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from exc
    if not ks or min(ks) < 1:
        raise click.BadParameter("give at least one K >= 1")
    return ks


@prior.command("build")
@click.option("--template", "template_name", required=True, help="template folder or built-in name (anny, anny-lite)")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV with a 'path' column: training meshes in the template's connectivity")
@click.option("--anny-identities", type=click.IntRange(min=1), default=None,
              help="instead of --manifest: generate this many anny identities (anny templates only)")
@click.option("--anny-poses", type=click.IntRange(min=1), default=5, show_default=True, help="poses per anny identity")
@click.option("--holdout-identities", type=click.IntRange(min=0), default=3, show_default=True,
              help="anny: extra identities (not trained on) whose bodies measure the prior's expressiveness")
@click.option("--holdout", type=click.FloatRange(0, 0.9), default=0.15, show_default=True,
              help="manifest: fraction of the meshes held out to measure expressiveness")
@click.option("--components", "components", required=True, help="K, or a comma-separated list (one prior per K)")
@click.option("--falloff", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="metres over which a part's components fade into its neighbours")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="prior .npz (several K: <stem>_K<k>.npz beside it); a JSON report <stem>.json is written too")
def prior_build(template_name, manifest, anny_identities, anny_poses, holdout_identities, holdout, components, falloff,
                seed, out) -> None:
    """Build the prior f(w) = f0 + C w and report held-out MED (mm) of the best w for each K."""
    from pathlib import Path

    import numpy as np

    from bodydata.features.acap import AcapExtractor
    from bodydata.fsutil import atomic_write_text
    from bodydata.registration.prior import build_prior, expression_med
    from bodydata.templates.template import load_template

    ks = _ks(components)
    tpl = load_template(template_name)
    if (manifest is None) == (anny_identities is None):
        raise click.UsageError("give exactly one of --manifest or --anny-identities")
    if anny_identities is not None:
        topo = (tpl.meta or {}).get("anny_topology")
        if not topo:
            raise click.UsageError(f"template {tpl.name!r} is not an anny template; use --manifest")
        from bodydata.registration.synthetic import anny_bodies

        train = anny_bodies(topo, anny_identities, anny_poses, seed=seed).vertices[topo]
        test = (anny_bodies(topo, holdout_identities, anny_poses, seed=seed, first_identity=10_000).vertices[topo]
                if holdout_identities else np.zeros((0, tpl.n_vertices, 3)))
    else:
        import csv

        from bodydata.mesh import read_mesh

        with open(manifest, newline="") as fh:
            paths = [r["path"] for r in csv.DictReader(fh)]
        allv = np.stack([read_mesh(p, expected_vertices=tpl.n_vertices).vertices for p in paths])
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(allv))
        n_test = int(round(holdout * len(allv)))
        train, test = allv[perm[n_test:]], allv[perm[:n_test]]
    click.echo(f"{len(train)} training and {len(test)} held-out meshes; extracting ACAP features ...")
    ex = AcapExtractor(tpl.vertices, tpl.faces)
    f_train = ex(train).f
    f_test = ex(test).f if len(test) else None
    outp = Path(out)
    report = {"template": tpl.name, "n_train": len(train), "n_heldout": len(test), "falloff_m": falloff,
              "priors": []}
    for k in ks:
        pr = build_prior(f_train, tpl.vertices, tpl.faces, tpl.part_labels, k, tpl.name, falloff)
        dst = outp if len(ks) == 1 else outp.with_name(f"{outp.stem}_K{k}{outp.suffix or '.npz'}")
        pr.save(dst)
        entry = {"K": k, "path": str(dst), "nnz_fraction": pr.basis.nnz / float(np.prod(pr.basis.shape))}
        if f_test is not None:
            m = expression_med(pr, f_test, test, tpl.vertices, tpl.faces)
            entry.update(heldout_med_mm=float(m["med_mm"].mean()), heldout_med_max_mm=float(m["med_mm"].max()),
                         acap_roundtrip_med_mm=float(m["floor_mm"].mean()))
        mt = expression_med(pr, f_train[:20], train[:20], tpl.vertices, tpl.faces)
        entry["train_med_mm"] = float(mt["med_mm"].mean())
        report["priors"].append(entry)
        click.echo(json.dumps(entry))
    atomic_write_text(outp.with_suffix(".json"), json.dumps(report, indent=2))


def _registrar(template_name, prior_path, device, hand_weight, reverse_weight):
    from bodydata.registration.prior import SparsePrior
    from bodydata.registration.register import Registrar, RegistrationConfig
    from bodydata.templates.template import load_template

    tpl = load_template(template_name)
    pr = SparsePrior.load(prior_path, n_vertices=tpl.n_vertices)
    cfg = RegistrationConfig(device=device, hand_weight=hand_weight, reverse_weight=reverse_weight)
    return Registrar(tpl, pr, cfg)


@click.command("convert")
@click.option("--source", required=True, help="source adapter name (see 'bodydata sources list')")
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False), help="the source's folder")
@click.option("--template", "template_name", required=True, help="template folder or built-in name")
@click.option("--prior", "prior_path", required=True, type=click.Path(exists=True, dir_okay=False), help="prior .npz")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output folder")
@click.option("--kind", default=None, help="only manifest rows of this kind (e.g. registration, scan)")
@click.option("--match", default=None, help="only rows whose id matches this regular expression (re.search)")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="convert at most this many meshes")
@click.option("--vts-landmarks", type=click.Path(exists=True, file_okay=False), default=None,
              help="remeshed sources: FAUST registrations folder; the SMPL landmarks are carried to each shape "
                   "through its .vts sample map (ground-truth sparse correspondences, like hand-marked landmarks)")
@click.option("--hand-weight", type=click.FloatRange(min=0), default=0.2, show_default=True,
              help="ICP weight of the template's hand vertices relative to the rest")
@click.option("--reverse-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="coarse-stage weight of the target->template closest-point term (0: the paper's one-sided ICP; "
                   "the fine stage never uses it)")
@click.option("--device", default=None, help="torch device (default: cuda if available, else cpu)")
@click.option("--redo", is_flag=True, help="convert rows already done too")
@click.option("--quiet", is_flag=True)
def convert(source, root, template_name, prior_path, out, kind, match, limit, vts_landmarks, hand_weight, reverse_weight,
            device, redo, quiet) -> None:
    """Convert a source's meshes to the template's connectivity (paper Eq. 14); writes OUT/conversion.csv."""
    import numpy as np

    from bodydata.registration.convert import convert_rows
    from bodydata.sources.base import get_adapter

    reg = _registrar(template_name, prior_path, device, hand_weight, reverse_weight)
    rows = get_adapter(source).discover(root)
    if kind:
        rows = [r for r in rows if r.kind == kind]
    if match:
        import re

        rows = [r for r in rows if re.search(match, r.id)]
    landmarks_for = None
    if vts_landmarks:
        from bodydata.registration.correspondence import VtsLandmarks

        landmarks_for = VtsLandmarks(vts_landmarks, root)
    results = convert_rows(reg, rows, out, landmarks_for=landmarks_for, skip_done=not redo, progress=not quiet,
                           limit=limit)
    ok = [r for r in results if r.status == "ok"]
    click.echo(f"{len(ok)} of {len(results)} converted")
    if ok:
        for key in ("landmark_error_mm", "p2m_mean_mm", "p2m_p95_mm", "m2p_mean_mm", "m2p_p95_mm", "seconds"):
            click.echo(f"  {key}: mean {np.mean([getattr(r, key) for r in ok]):.3f}")
    for r in results:
        if r.status != "ok":
            click.echo(f"  failed {r.id}: {r.reason}")


@click.group("benchmark")
def benchmark() -> None:
    """Benchmarks that measure converted data against ground truth."""


@benchmark.command("correspondence")
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False),
              help="remeshed shapes with .vts maps (e.g. FAUST_r: off/*.off + corres/*.vts)")
@click.option("--converted", required=True, type=click.Path(exists=True, file_okay=False),
              help="a 'bodydata convert' output folder (conversion.csv + meshes/), or with --registrations the "
                   "FAUST registrations folder")
@click.option("--registrations", is_flag=True,
              help="route the true FAUST registrations instead (each aligned to its shape through the .vts "
                   "samples): the protocol's discretisation floor")
@click.option("--ids", default=None, help="shape stems to use, e.g. 'tr_reg_060-079' or a comma list (default: all)")
@click.option("--pairs", type=click.Choice(["all", "consecutive"]), default="all", show_default=True)
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="per-pair CSV")
def benchmark_correspondence(root, converted, registrations, ids, pairs, out) -> None:
    """Shape-pair correspondence through the template: mean geodesic error / sqrt(area) (x100 printed)."""
    from bodydata.registration.correspondence import run_benchmark

    summary = run_benchmark(root, converted, registrations=registrations, ids=ids, pairs=pairs, out=out)
    click.echo(json.dumps(summary, indent=2))


COMMANDS = [prior, convert, benchmark]
