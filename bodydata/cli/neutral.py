"""``bodydata neutralize``: one neutral-pose body per subject of a converted manifest (anny un-posing and fusion, or ARAP)."""
from __future__ import annotations

import click

from bodydata.neutral.neutralize import METHODS as NEUTRAL_METHODS


@click.command("neutralize")
@click.option("--manifest", type=click.Path(dir_okay=False, exists=True, path_type=str), required=True,
              help="manifest CSV of meshes in the template's connectivity (source rows, or columns subject, path)")
@click.option("--template", "template_name", required=True, help="template name (anny, anny-lite) or template folder")
@click.option("--target", required=True,
              help="target neutral: 'anny' (anny's mean-phenotype rest pose), 'scape' (mean of the SPRING means) or a mesh file")
@click.option("--spring-dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="for --target scape: SPRING release_model folder (male/female_mean_vertex.npy)")
@click.option("--out", type=click.Path(file_okay=False, path_type=str), required=True, help="output folder")
@click.option("--iterations", type=int, default=100, show_default=True, help="maximum ARAP iterations")
@click.option("--tol", type=float, default=1e-5, show_default=True, help="ARAP relative energy decrease to stop at")
@click.option("--handle-weight", type=float, default=10.0, show_default=True, help="weight of the re-posed segment handles")
@click.option("--selection", type=click.Choice(["joint_angles", "rigid"]), default="joint_angles", show_default=True,
              help="pose choice: smallest joint-angle distance to the target, or smallest rigid residual (the paper)")
@click.option("--average", type=click.IntRange(min=1), default=2, show_default=True,
              help="deform this many best-scored poses and average them (1 = the paper's single pose)")
@click.option("--girdle", is_flag=True,
              help="shoulder-girdle joint: swing each shoulder about the jugular notch to the target's slope "
                   "(steadier across source poses on FAUST, less accurate on anny; see NeutralConfig.girdle)")
@click.option("--method", type=click.Choice(list(NEUTRAL_METHODS)), default="auto", show_default=True,
              help="arap: best poses ARAP'd into the target pose; body: every pose fitted by anny, un-posed through "
                   "its skeleton and fused (anny/anny-lite templates only; other templates cannot start); "
                   "auto: body on the anny templates, arap elsewhere")
@click.option("--no-png", is_flag=True, help="skip the before/after PNG per subject")
@click.option("--quiet", is_flag=True, help="no progress bar")
def neutralize(manifest: str, template_name: str, target: str, spring_dir: str | None, out: str, iterations: int,
               tol: float, handle_weight: float, selection: str, average: int, girdle: bool, method: str, no_png: bool,
               quiet: bool) -> None:
    """Write OUT/neutral/<subject>.ply and OUT/neutral.csv (one row per subject; failures recorded, done subjects skipped).

    OUT/neutral.csv is a source-row manifest: pass it to `bodydata build-dataset --neutral`. Exit status: 0 every
    subject done, 1 some failed, 2 bad input (nothing ran).
    """
    from bodydata.cli._exit import CannotStart, exit_for_failures
    from bodydata.errors import BodydataError
    from bodydata.neutral.neutralize import NeutralConfig, load_target, run_neutralize
    from bodydata.templates.template import load_template

    try:
        tpl = load_template(template_name)
        tgt = load_target(target, tpl, spring_dir)
        cfg = NeutralConfig(iterations=iterations, tol=tol, handle_weight=handle_weight, selection=selection, average=average,
                            girdle=("upper_arm_L", "upper_arm_R") if girdle else (), method=method)
        summary = run_neutralize(manifest, tpl, tgt, out, cfg, png=not no_png, progress=not quiet)
    except BodydataError as exc:
        raise CannotStart(str(exc)) from None
    click.echo(f"{summary.csv_path}: {summary.n_done} done, {summary.n_failed} failed, {summary.n_skipped} skipped (already done)")
    for row in summary.rows:
        if row.get("status") == "failed":
            click.echo(f"  failed {row['subject']}: {row.get('reason', '')}")
    exit_for_failures(summary.n_failed)


COMMANDS = [neutralize]
