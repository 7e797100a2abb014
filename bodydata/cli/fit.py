"""``bodydata fit`` and ``fit-joints``: fit a trained embedding to meshes (paper Eq. 15) or to 2D joints (Eq. 16)."""
from __future__ import annotations

import click

EXAMPLE = """
\b
Examples:
  bodydata fit --run runs/dhnn --meshes scans/registered --out fits/dhnn
  bodydata fit --run runs/dhnn --meshes meshes.csv --out fits/markers --markers landmarks
  bodydata fit --run runs/dhnn --meshes DIR --out OUT --iterations 400 --device cuda --batch-size 32

\b
Eq. 15 weights in our units: λ = 1 per mm² (the paper's 1e6 per m²), λ_β = λ_θ = 1.
Writes OUT/meshes/<name>.ply, OUT/codes/<name>.npz and OUT/fit.csv (MED mm, iterations, seconds per mesh).
Exit status: 0 every mesh fitted; 1 some meshes failed (see fit.csv); 2 cannot start (no run, no meshes).
"""


@click.command("fit", epilog=EXAMPLE)
@click.option("--run", required=True, type=click.Path(file_okay=False, path_type=str), help="a `bodydata train` run")
@click.option("--meshes", required=True, type=click.Path(path_type=str),
              help="a folder of meshes, a text list (one path a line) or a CSV with a 'path' column")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str), help="the output folder")
@click.option("--iterations", type=click.IntRange(min=0), default=200, show_default=True, help="Adam steps at most")
@click.option("--init", type=click.Choice(["encoder", "zero"]), default="encoder", show_default=True,
              help="start from the encoder's codes of each mesh, or from zero codes")
@click.option("--no-rigid", is_flag=True, help="no global R, t (alignment 'none')")
@click.option("--markers", default=None,
              help="fit from these vertices only: 'landmarks' (the template's set) or a landmark CSV [default: all]")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="meshes per batch")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="[default: CUDA when present]")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="last", show_default=True,
              help="last: the final weights; best: the epoch with the lowest test loss (chosen on the test split)")
def fit_cmd(run, meshes, out, iterations, init, no_rigid, markers, batch_size, device, checkpoint) -> None:
    """Fit codes and a rigid motion of RUN's model to each mesh of MESHES; write the fits to OUT.

    The energy is the paper's Eq. 15 (see below).
    """
    from bodydata.errors import BodydataError
    from bodydata.evaluate.fit import FitSettings
    from bodydata.evaluate.fit_files import fit_meshes
    from bodydata.manifest.status import is_done

    settings = FitSettings(iterations=iterations, init=init, rigid=not no_rigid)
    try:
        rep = fit_meshes(run, meshes, out, settings, batch_size=batch_size, device=device, markers=markers,
                         checkpoint=checkpoint)
    except BodydataError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    click.echo(f"{out}: {rep.n_done} fitted ({rep.n_skipped} already done), {rep.n_failed} failed")
    for r in rep.rows:
        if not is_done(r["status"]):
            click.echo(f"  failed: {r['reason']}", err=True)
    raise SystemExit(1 if rep.n_failed else 0)



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
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    click.echo(f"{out}: {rep.n_done} fitted, {rep.n_failed} failed")
    for r in rep.rows:
        if not is_done(r["status"]):
            click.echo(f"  failed: {r['reason']}", err=True)
    raise SystemExit(1 if rep.n_failed else 0)


COMMANDS = [fit_cmd, fit_joints_cmd]
