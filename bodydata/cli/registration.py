"""``bodydata prior build|lift``, ``bodydata convert`` and ``bodydata benchmark correspondence``: connectivity conversion."""
from __future__ import annotations

import json

import click

from bodydata.cli._exit import CannotStart


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
              help="CSV with a 'path' column (relative paths: from its folder), e.g. a 'sources scan' manifest or "
                   "lifted.csv: training meshes in the template's connectivity; rows not done are left out")
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
    from bodydata.errors import BodydataError
    from bodydata.registration.prior_build import build_template_priors

    ks = _ks(components)
    try:
        build_template_priors(template_name, ks, out, manifest=manifest, anny_identities=anny_identities,
                              anny_poses=anny_poses, heldout_identities=holdout_identities, heldout=holdout,
                              falloff=falloff, weighting=weighting, seed=seed, progress=click.echo)
    except BodydataError as exc:
        raise CannotStart(str(exc)) from None


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

    from bodydata.errors import BodydataError
    from bodydata.features.files import list_meshes
    from bodydata.registration.lift import lift_pose_files

    src = Path(poses)
    try:
        files = list_meshes(src) if src.is_dir() else [src]
    except BodydataError as exc:
        raise CannotStart(str(exc)) from None
    s = lift_pose_files(cage_rest, fine_rest, files, out, smooth=smooth, progress=not quiet)
    for path, reason in s.failures:
        click.echo(f"failed: {reason}", err=True)
    click.echo(f"lifted {s.done} poses, {s.failed} failed; manifest {s.manifest}")
    raise SystemExit(1 if s.failed else 0)


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
              help="register this many meshes at once (Registrar.register_batch: batched prior evaluations, each "
                   "result as if alone up to rounding; meant for CUDA, measured no faster on a 2-core CPU). The "
                   "same outputs as without; above 1 the meshes are converted in this process")
@click.option("--quiet", is_flag=True)
def convert(source, root, template_name, prior_path, out, kind, match, limit, vts_landmarks, landmark_pairs,
            pairs_topology, landmark_schedule, hand_weight, reverse_weight, device, redo, workers, scheduler,
            batch_size, quiet) -> None:
    """Convert a source's meshes to the template's connectivity (paper Eq. 14); writes OUT/conversion.csv.

    Exit status 0 when every selected mesh is converted, 1 when some failed, 2 when the conversion cannot start.

    Runs the pipeline's ``convert`` stage (docs/pipeline.md) with OUT as its folder: OUT/meshes/<id>.ply,
    OUT/conversion.csv (one row per selected mesh), OUT/worst.png, OUT/sources.csv (the converted meshes as a
    manifest for ``bodydata neutralize`` / ``build-dataset``) and the stage manifest OUT/manifest.csv. Each
    worker process builds the registration once and converts many meshes; done meshes are skipped on a re-run.
    """
    from bodydata.errors import BodydataError
    from bodydata.pipeline.stage_convert import run_convert

    try:
        run = run_convert(out, scheduler=scheduler, workers=workers, redo=redo, progress=not quiet,
                          template=template_name, prior=prior_path, source=source, root=root, kind=kind, match=match,
                          limit=limit, vts_landmarks=vts_landmarks, vts_root=root if vts_landmarks else None,
                          hand_weight=hand_weight, reverse_weight=reverse_weight, device=device,
                          landmark_pairs=landmark_pairs, pairs_topology=pairs_topology,
                          registration=_landmark_schedule(landmark_schedule), batch_size=batch_size)
    except BodydataError as exc:
        raise CannotStart(str(exc)) from None
    _report(run.results, run.summary.line(), run.table)
    raise SystemExit(run.exit_code)


def _report(results, how: str, table) -> None:
    """Print a conversion's counts, mean metrics and failures."""
    import numpy as np

    from bodydata.manifest.status import is_done

    done = [r for r in results if is_done(r.status)]
    click.echo(f"{len(done)} of {len(results)} converted ({how}) -> {table}")
    if done:
        for key in ("landmark_error_mm", "p2m_mean_mm", "p2m_p95_mm", "m2p_mean_mm", "m2p_p95_mm", "seconds"):
            click.echo(f"  {key}: mean {np.mean([getattr(r, key) for r in done]):.3f}")
    for r in results:
        if not is_done(r.status):
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
@click.option("--geodesics", type=click.Choice(["exact", "flip", "mmp", "heat", "dijkstra"]), default="exact",
              show_default=True,
              help="the ruler: exact = flip (Dijkstra paths shortened by edge flips; potpourri3d speeds it up), "
                   "mmp (exact window propagation, needs gdist), heat (approximate, needs potpourri3d), dijkstra "
                   "(along edges, reads up to ~5 percent long)")
def benchmark_correspondence(root, converted, registrations, ids, pairs, out, geodesics) -> None:
    """Shape-pair correspondence through the template: mean geodesic error / sqrt(area) (x100 printed)."""
    from bodydata.errors import BodydataError
    from bodydata.registration.correspondence import run_benchmark

    try:
        summary = run_benchmark(root, converted, registrations=registrations, ids=ids, pairs=pairs, out=out,
                                geodesics=geodesics)
    except BodydataError as exc:
        raise CannotStart(str(exc)) from None
    click.echo(json.dumps(summary, indent=2))


COMMANDS = [prior, convert, benchmark]
