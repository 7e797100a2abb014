"""``bodydata fit`` and ``fit-joints``: a trained embedding fitted to meshes (Eq. 15), to scans in any connectivity, or
to 2D joints (Eq. 16)."""
from __future__ import annotations

import click

from bodydata.bodyfit.orient import UNITS
from bodydata.cli._exit import CannotStart, exit_for_failures
from bodydata.evaluate.solvers import DEFAULT_JACOBIAN_EVERY, DEFAULT_STEPS, JACOBIAN_EVERY_HELP, SOLVERS

EXAMPLE = """
\b
Examples:
  bodydata fit --run runs/dhnn --meshes scans/registered --out fits/dhnn
  bodydata fit --run runs/dhnn --meshes meshes.csv --out fits/markers --markers landmarks
  bodydata fit --run runs/dhnn --meshes DIR --out OUT --iterations 400 --device cuda --batch-size 32
  bodydata fit --run runs/dhnn --meshes DIR --out OUT --solver adam --iterations 200
  bodydata fit --run runs/dhnn --target-kind scan --meshes scans --landmarks scans/landmarks --out fits/scans
  bodydata fit --run runs/dhnn --target-kind scan --meshes scans.csv --share-shape --units mm --out fits/scans_s
  bodydata fit --run runs/dhnn --target-kind scan --meshes clouds --landmarks one_topology.csv --fit-scale --out OUT

\b
Eq. 15 weights in our units: λ = 1 per mm² (the paper's 1e6 per m²), λ_β = λ_θ = 1. Solver: Levenberg-Marquardt,
40 steps at most, an exact Jacobian every 4 kept steps (--jacobian-every) and Broyden updates between (--solver adam:
Adam, 200 steps at most); --iterations changes the limit.
Writes OUT/meshes/<name>.ply, OUT/codes/<name>.npz and OUT/fit.csv (MED mm, iterations, seconds per mesh).
Scans (--target-kind scan; meshes in any connectivity or point clouds): a start similarity from each scan's
landmarks (--landmarks DIR holds <scan stem>.csv, or one CSV for all; name,vertex_id rows naming scan points; else
the input CSV's landmarks_path column), then point-to-plane ICP both ways with shrinking distance gates
(10, 5, 3, 2, 1 cm) and a 60-degree normal gate, over the codes, R, t (and the scale with --fit-scale).
fit.csv then has PMD (scan point -> fitted mesh, mm) without the hands (pmd_mm, the paper's) and with them (pmd_wh_mm).
--share-shape: one shape code per subject over all of its scans (the paper's "_s" rows); the subject is the input
CSV's subject (or identity) column, else the file stem up to its last '_' (anna_03.ply -> anna; --subject-regex).
Exit status: 0 every mesh fitted; 1 some meshes failed (see fit.csv); 2 cannot start (no run, no meshes).
"""


@click.command("fit", epilog=EXAMPLE)
@click.option("--run", required=True, type=click.Path(file_okay=False, path_type=str), help="a `bodydata train` run")
@click.option("--meshes", required=True, type=click.Path(path_type=str),
              help="a folder of meshes, a text list (one path a line) or a CSV with a 'path' column")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str), help="the output folder")
@click.option("--iterations", type=click.IntRange(min=0), default=None,
              help=f"steps at most [default: {DEFAULT_STEPS['lm']} with lm, {DEFAULT_STEPS['adam']} with adam; scan: "
                   "200 Adam steps in all, spread over the ICP rounds]")
@click.option("--solver", type=click.Choice(list(SOLVERS)), default="lm", show_default=True,
              help="Eq. 15's optimiser: Levenberg-Marquardt or Adam (mesh targets; the scan fit is always Adam, its ICP "
                   "rounds re-pairing the points between steps)")
@click.option("--jacobian-every", type=click.IntRange(min=1), default=DEFAULT_JACOBIAN_EVERY, show_default=True,
              help=JACOBIAN_EVERY_HELP)
@click.option("--init", type=click.Choice(["encoder", "zero"]), default="encoder", show_default=True,
              help="start from the encoder's codes of each mesh, or from zero codes")
@click.option("--no-rigid", is_flag=True, help="no global R, t (alignment 'none')")
@click.option("--markers", default=None,
              help="fit from these vertices only: 'landmarks' (the template's set) or a landmark CSV [default: all]")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="meshes (scans) per batch")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="[default: CUDA when present]")
@click.option("--target-kind", type=click.Choice(["mesh", "scan"]), default="mesh", show_default=True,
              help="mesh: the template's connectivity (Eq. 15 on vertices); scan: any connectivity or a point cloud (ICP)")
@click.option("--landmarks", default=None, type=click.Path(exists=True, path_type=str),
              help="scan: a folder of <scan stem>.csv landmark files, or one landmark CSV for every scan")
@click.option("--share-shape", is_flag=True, help="scan: one shape code per subject over all of its scans")
@click.option("--subject-regex", default=None,
              help="scan: the subject of a file stem, a (?P<subject>...) group [default: the stem up to its last '_']")
@click.option("--units", type=click.Choice(list(UNITS)), default="m", show_default=True,
              help="scan: units of the scans' coordinates (an input CSV's units column wins)")
@click.option("--fit-scale", is_flag=True, help="scan: optimise a global scale too (scans of unknown units)")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="last", show_default=True,
              help="last: the final weights; best: the epoch with the lowest test loss (chosen on the test split)")
def fit_cmd(run, meshes, out, iterations, solver, jacobian_every, init, no_rigid, markers, batch_size, device, target_kind, landmarks,
            share_shape, subject_regex, units, fit_scale, checkpoint) -> None:
    """Fit codes and a rigid motion of RUN's model to each mesh (or scan) of MESHES; write the fits to OUT.

    The energy is the paper's Eq. 15 (see below).
    """
    from bodydata.errors import BodydataError
    from bodydata.evaluate.fit import FitSettings
    from bodydata.evaluate.fit_files import fit_meshes
    from bodydata.manifest.status import is_done

    scan_only = {"--landmarks": landmarks, "--share-shape": share_shape, "--subject-regex": subject_regex,
                 "--fit-scale": fit_scale, "--units": units != "m"}
    mesh_only = {"--markers": markers, "--no-rigid": no_rigid, "--init": init != "encoder"}
    wrong = [k for k, v in (scan_only if target_kind == "mesh" else mesh_only).items() if v]
    if wrong:
        raise CannotStart(f"{', '.join(wrong)} not with --target-kind {target_kind}")
    try:
        if target_kind == "scan":
            from bodydata.evaluate.fit_scan import ScanFitSettings
            from bodydata.evaluate.fit_scan_files import (
                DEFAULT_SUBJECT_REGEX,
                fit_scans,
            )

            per_round = max(1, -(-(200 if iterations is None else iterations) // len(ScanFitSettings().dists)))  # the rounds share --iterations
            rep = fit_scans(run, meshes, out, ScanFitSettings(fit_scale=fit_scale, round_iterations=per_round),
                            landmarks=landmarks, share_shape=share_shape,
                            subject_regex=subject_regex or DEFAULT_SUBJECT_REGEX, units=units,
                            batch_size=batch_size, device=device, checkpoint=checkpoint)
        else:
            rep = fit_meshes(run, meshes, out, FitSettings(iterations=iterations, init=init, rigid=not no_rigid,
                                                           solver=solver, jacobian_every=jacobian_every),
                             batch_size=batch_size, device=device, markers=markers, checkpoint=checkpoint)
    except BodydataError as exc:
        raise CannotStart(str(exc)) from None
    click.echo(f"{out}: {rep.n_done} fitted ({rep.n_skipped} already done), {rep.n_failed} failed")
    for r in rep.rows:
        if not is_done(r["status"]):
            click.echo(f"  failed: {r['reason']}", err=True)
    exit_for_failures(rep.n_failed)



@click.command("fit-joints")
@click.option("--run", required=True, type=click.Path(file_okay=False, path_type=str), help="a `bodydata train` run")
@click.option("--joints2d", required=True, type=click.Path(path_type=str),
              help="a JSON file of 2D joints (pixels) or a folder of them")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str), help="the output folder")
@click.option("--focal", type=float, default=None, help="focal length in pixels [default: each file's own]")
@click.option("--center", type=(float, float), default=None, help="principal point cx cy in pixels (with --focal)")
@click.option("--iterations", type=click.IntRange(min=0), default=300, show_default=True,
              help="Adam steps of the full fit (after 60 on the rotation and translation alone)")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="[default: CUDA when present]")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="last", show_default=True,
              help="last: the final weights; best: the epoch with the lowest test loss (chosen on the test split)")
def fit_joints_cmd(run, joints2d, out, focal, center, iterations, device, checkpoint) -> None:
    """Fit RUN's model to 2D joints seen by a pinhole camera (paper Eq. 16); write meshes, codes and a CSV to OUT.

    Weights (the paper's): λ = 55 per px² on the Geman-McClure reprojection term (σ = 100 px), λ_g = 400 on the
    elbow/knee hyper-extension penalty, λ_β = 5 and λ_θ = 10 per squared latent unit. A file is JSON:
    {"joints": {"pelvis": [x, y], ...}, "focal": F, "center": [cx, cy]} (joints absent or null are not seen;
    the camera may come from --focal/--center instead).
    """
    from bodydata.errors import BodydataError
    from bodydata.evaluate.fit_joints2d import Camera, Joints2dSettings
    from bodydata.evaluate.fit_joints2d_files import fit_joint_files
    from bodydata.manifest.status import is_done

    try:
        if (focal is None) != (center is None):
            raise BodydataError("give --focal and --center together (or neither, to use each file's camera)")
        camera = Camera(focal, tuple(center)) if focal is not None else None
        rep = fit_joint_files(run, joints2d, out, camera, Joints2dSettings(iterations=iterations), device=device,
                              checkpoint=checkpoint)
    except BodydataError as exc:
        raise CannotStart(str(exc)) from None
    click.echo(f"{out}: {rep.n_done} fitted, {rep.n_failed} failed")
    for r in rep.rows:
        if not is_done(r["status"]):
            click.echo(f"  failed: {r['reason']}", err=True)
    exit_for_failures(rep.n_failed)


COMMANDS = [fit_cmd, fit_joints_cmd]
