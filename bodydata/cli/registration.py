"""``bodydata prior build|lift``, ``bodydata convert`` and ``bodydata benchmark correspondence``: connectivity conversion."""
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
@click.option("--weighting", type=click.Choice(["acap", "cotangent"]), default="acap", show_default=True,
              help="edge weights of the prior's feature fit and E_prior: the ACAP authors' ('acap') or clamped "
                   "cotangent weights, whose round trip keeps the body's size on meshes with many obtuse triangles "
                   "(the scape template)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="prior .npz (several K: <stem>_K<k>.npz beside it); a JSON report <stem>.json is written too")
def prior_build(template_name, manifest, anny_identities, anny_poses, holdout_identities, holdout, components, falloff,
                weighting, seed, out) -> None:
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
        from bodydata.generator.bodies import anny_bodies

        train = anny_bodies(topo, anny_identities, anny_poses, seed=seed).vertices[topo]
        test = (anny_bodies(topo, holdout_identities, anny_poses, seed=seed, first_identity=10_000).vertices[topo]
                if holdout_identities else np.zeros((0, tpl.n_vertices, 3)))
    else:
        import csv

        from bodydata.mesh import read_mesh
        from bodydata.mesh.alignment import align

        with open(manifest, newline="") as fh:
            paths = [r["path"] for r in csv.DictReader(fh) if r.get("status", "done") in ("done", "")]
        if not paths:
            raise click.UsageError(f"{manifest}: no meshes (rows with status done and a path column)")
        allv = np.stack([read_mesh(p, expected_vertices=tpl.n_vertices).vertices for p in paths])
        # ACAP features see global rotation: put every training mesh in the template's frame first
        allv = align(allv, tpl.vertices).apply(allv)
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(allv))
        n_test = int(round(holdout * len(allv)))
        train, test = allv[perm[n_test:]], allv[perm[:n_test]]
    click.echo(f"{len(train)} training and {len(test)} held-out meshes; extracting ACAP features ...")
    ex = AcapExtractor(tpl.vertices, tpl.faces, weighting=weighting)
    f_train = ex(train).f
    f_test = ex(test).f if len(test) else None
    outp = Path(out)
    report = {"template": tpl.name, "n_train": len(train), "n_heldout": len(test), "falloff_m": falloff,
              "weighting": weighting,
              "priors": []}
    for k in ks:
        pr = build_prior(f_train, tpl.vertices, tpl.faces, tpl.part_labels, k, tpl.name, falloff, weighting=weighting)
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


@prior.command("lift")
@click.option("--cage-rest", required=True, type=click.Path(exists=True, dir_okay=False),
              help="the coarse mesh in the same pose as --fine-rest")
@click.option("--fine-rest", required=True, type=click.Path(exists=True, dir_okay=False),
              help="the same body in the template's connectivity (e.g. the template mesh)")
@click.option("--poses", required=True, type=click.Path(exists=True),
              help="a folder of coarse pose meshes (.obj/.off/.ply, the cage's connectivity) or one file")
@click.option("--smooth", type=click.IntRange(min=0), default=1, show_default=True,
              help="0: each vertex follows its closest coarse triangle; > 0 blends over the triangles around it")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output folder (meshes + lifted.csv)")
@click.option("--quiet", is_flag=True)
def prior_lift(cage_rest, fine_rest, poses, smooth, out, quiet) -> None:
    """Carry a coarse pose collection onto the template connectivity, as training meshes for 'prior build'."""
    from pathlib import Path

    from bodydata.naming import natural_key
    from bodydata.registration.lift import lift_pose_files

    src = Path(poses)
    files = (sorted((p for p in src.iterdir() if p.suffix.lower() in (".obj", ".off", ".ply")), key=lambda p: natural_key(p.name))
             if src.is_dir() else [src])
    if not files:
        raise click.UsageError(f"{poses}: no .obj/.off/.ply meshes")
    s = lift_pose_files(cage_rest, fine_rest, files, out, smooth=smooth, progress=not quiet)
    for path, reason in s.failures:
        click.echo(f"failed: {reason}", err=True)
    click.echo(f"lifted {s.done} poses, {s.failed} failed; manifest {s.manifest}")
    raise SystemExit(1 if s.failed else 0)


def _registrar(template_name, prior_path, device, hand_weight, reverse_weight):
    from bodydata.registration.prior import SparsePrior
    from bodydata.registration.register import Registrar, RegistrationConfig
    from bodydata.templates.template import load_template

    tpl = load_template(template_name)
    pr = SparsePrior.load(prior_path, n_vertices=tpl.n_vertices)
    cfg = RegistrationConfig(device=device, hand_weight=hand_weight, reverse_weight=reverse_weight)
    return Registrar(tpl, pr, cfg)


def _landmark_schedule(text: str | None) -> dict:
    """``--landmark-schedule`` -> the ``registration`` overrides of the convert stage."""
    if not text:
        return {}
    try:
        scale = [float(x) for x in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma list of numbers", param_hint="--landmark-schedule") from None
    if any(not x >= 0 for x in scale):
        raise click.BadParameter("factors must be >= 0", param_hint="--landmark-schedule")
    return {"fine_landmark_scale": scale}


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
@click.option("--landmark-pairs", type=click.Path(exists=True, dir_okay=False), default=None,
              help="file of 'template_vertex source_vertex' lines (e.g. the paper's 79 SCAPE<->SMPL pairs, "
                   "bodyrep_corres.txt): extra landmarks pair_<k> on the template and on every source mesh with "
                   "--pairs-topology's vertex count")
@click.option("--pairs-topology", default="smpl_6890", show_default=True,
              help="topology of the pair file's second column (smpl_6890, scape_12500, anny_notoes, ...)")
@click.option("--landmark-schedule", default=None, metavar="S1,S2,...",
              help="landmark weight factor of each fine round, the last repeated (default 1,0.1,0.01: landmarks of "
                   "two body models agree only to 1-2 cm, so the surface takes over); use 1 when the landmarks are "
                   "exact vertex correspondences (pair files, registrations of one topology)")
@click.option("--hand-weight", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="ICP weight of the template's hand vertices relative to the rest (below 1 down-weights hands)")
@click.option("--reverse-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="coarse-stage weight of the target->template closest-point term (0: the paper's one-sided ICP; "
                   "the fine stage uses its own point-to-plane version, RegistrationConfig.fine_reverse_weight)")
@click.option("--device", default=None, help="torch device (default: cuda if available, else cpu)")
@click.option("--redo", is_flag=True, help="convert rows already done too (forgets OUT's stage manifest first)")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="local dask worker processes (default: one per CPU, at most RAM/2 GiB); 0 = in this process")
@click.option("--scheduler", default=None,
              help="'local' (default), 'synchronous' (in this process, no dask) or a dask scheduler address "
                   "tcp://HOST:PORT (default $BODYDATA_SCHEDULER, else local)")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="register this many meshes at once in one process (Registrar.register_batch: batched prior "
                   "evaluations, each result as if alone; meant for CUDA, measured no faster on a 2-core CPU). Above "
                   "1 the meshes are converted in this process without the pipeline stage: OUT/meshes, "
                   "OUT/conversion.csv and OUT/worst.png only")
@click.option("--quiet", is_flag=True)
def convert(source, root, template_name, prior_path, out, kind, match, limit, vts_landmarks, landmark_pairs,
            pairs_topology, landmark_schedule, hand_weight, reverse_weight, device, redo, workers, scheduler,
            batch_size, quiet) -> None:
    """Convert a source's meshes to the template's connectivity (paper Eq. 14); writes OUT/conversion.csv.

    Runs the pipeline's ``convert`` stage (docs/pipeline.md) with OUT as its folder: OUT/meshes/<id>.ply,
    OUT/conversion.csv (one row per selected mesh), OUT/worst.png, OUT/sources.csv (the converted meshes as a
    manifest for ``bodydata neutralize`` / ``build-dataset``) and the stage manifest OUT/manifest.csv. Each
    worker process builds the registration once and converts many meshes; done meshes are skipped on a re-run.
    """
    from pathlib import Path


    from bodydata.errors import BodydataError
    from bodydata.pipeline.manifest import JOURNAL_NAME, MANIFEST_NAME
    from bodydata.pipeline.orchestrate import open_executor, run_stage
    from bodydata.pipeline.stage import StageContext
    from bodydata.pipeline.stage_convert import CONVERSION_CSV, make_stage
    from bodydata.registration.convert import read_results

    folder = Path(out).resolve()
    registration = _landmark_schedule(landmark_schedule)
    if batch_size > 1:
        _convert_batched(source, root, template_name, prior_path, folder, kind, match, limit, vts_landmarks,
                         hand_weight, reverse_weight, device, redo, batch_size, quiet, registration,
                         (landmark_pairs, pairs_topology))
        return
    try:
        stage = make_stage(template=template_name, prior=prior_path, source=source, root=root, kind=kind, match=match,
                           limit=limit, vts_landmarks=vts_landmarks, vts_root=root if vts_landmarks else None,
                           hand_weight=hand_weight, reverse_weight=reverse_weight, device=device,
                           landmark_pairs=landmark_pairs, pairs_topology=pairs_topology, registration=registration)
        if redo:
            for name in (MANIFEST_NAME, JOURNAL_NAME):
                (folder / name).unlink(missing_ok=True)
        with open_executor(scheduler, workers) as executor:
            summary = run_stage(stage, StageContext(out_dir=folder), executor, progress=not quiet)
    except BodydataError as exc:
        raise click.ClickException(str(exc)) from None
    _report(read_results(folder / CONVERSION_CSV), summary.line(), folder / CONVERSION_CSV)


def _report(results, how: str, table) -> None:
    """Print a conversion's counts, mean metrics and failures."""
    import numpy as np

    ok = [r for r in results if r.status == "ok"]
    click.echo(f"{len(ok)} of {len(results)} converted ({how}) -> {table}")
    if ok:
        for key in ("landmark_error_mm", "p2m_mean_mm", "p2m_p95_mm", "m2p_mean_mm", "m2p_p95_mm", "seconds"):
            click.echo(f"  {key}: mean {np.mean([getattr(r, key) for r in ok]):.3f}")
    for r in results:
        if r.status != "ok":
            click.echo(f"  failed {r.id}: {r.reason}")


def _with_pairs(landmarks_for, path, topology):
    """(template pair landmarks, a ``landmarks_for(row, vertices)`` that adds the source pair landmarks as the
    convert stage does: :func:`bodydata.templates.landmarks.add_pair_landmarks`). Raises TemplateError for a bad
    file or topology."""
    from bodydata.registration.convert import source_landmarks
    from bodydata.templates.landmarks import add_pair_landmarks, load_landmark_pairs

    pair_tpl, pair_src = load_landmark_pairs(path, topology)

    def with_pairs(row, vertices):
        lm = landmarks_for(row, vertices) if landmarks_for else source_landmarks(row, len(vertices))
        return add_pair_landmarks(lm, len(vertices), pair_src, topology)

    return pair_tpl, with_pairs


def _convert_batched(source, root, template_name, prior_path, folder, kind, match, limit, vts_landmarks, hand_weight,
                     reverse_weight, device, redo, batch_size, quiet, registration=None, pairs=(None, None)) -> None:
    """``convert --batch-size N`` (N > 1): the source's rows through :func:`bodydata.registration.convert.
    convert_rows` in this process, N meshes per :meth:`~bodydata.registration.register.Registrar.register_batch`."""
    import re
    from pathlib import Path


    from bodydata.errors import BodydataError
    from bodydata.registration.convert import convert_rows
    from bodydata.sources.base import get_adapter

    try:
        rows = [r for r in get_adapter(source).discover(Path(root)) if (kind is None or r.kind == kind)
                and (match is None or re.search(match, r.id))]
        landmarks_for = None
        if vts_landmarks:
            from bodydata.registration.correspondence import VtsLandmarks

            landmarks_for = VtsLandmarks(vts_landmarks, root)
        pair_tpl = {}
        if pairs[0]:
            pair_tpl, landmarks_for = _with_pairs(landmarks_for, *pairs)
        from bodydata.registration.prior import SparsePrior
        from bodydata.registration.register import Registrar, RegistrationConfig
        from bodydata.templates.template import load_template

        tpl = load_template(template_name)
        tpl.landmarks.update(pair_tpl)
        cfg = RegistrationConfig(device=device, hand_weight=hand_weight, reverse_weight=reverse_weight,
                                 **(registration or {}))
        reg = Registrar(tpl, SparsePrior.load(prior_path, n_vertices=tpl.n_vertices), cfg)
        results = convert_rows(reg, rows, folder, landmarks_for=landmarks_for, skip_done=not redo,
                               progress=not quiet, limit=limit, batch_size=batch_size)
    except BodydataError as exc:
        raise click.ClickException(str(exc)) from None
    _report(results, f"batches of {batch_size}", folder / "conversion.csv")


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
