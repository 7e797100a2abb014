"""``bodydata synth anny``: generate anny bodies with ground truth (phenotype, pose) for testing and training."""
from __future__ import annotations

import click


def _list_poses(ctx: click.Context, _param, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from bodydata.generator.poses import KEY_POSES

    for name, joints in KEY_POSES.items():
        desc = "; ".join(f"{j} " + ", ".join(f"{d} {v:+g}" for d, v in dofs.items()) for j, dofs in joints.items())
        click.echo(f"{name}: {desc or 'anny reference A-pose'}")
    ctx.exit(0)


@click.group("synth")
def synth() -> None:
    """Generate synthetic bodies with known ground truth."""


@synth.command("anny")
@click.option("--identities", type=click.IntRange(min=1), required=True, help="number of identities (phenotypes)")
@click.option("--poses", type=click.IntRange(min=1), required=True, help="posed bodies per identity")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="random seed (same seed: byte-identical files)")
@click.option("--topology", type=click.Choice(["notoes", "notoes_collapse10pc", "anny"]), default="notoes",
              show_default=True,
              help="main mesh connectivity: notoes 12,272 vertices, notoes_collapse10pc 1,229, anny 13,718")
@click.option("--also-topology", "also", multiple=True,
              type=click.Choice(["notoes", "notoes_collapse10pc", "anny", "subdiv"]),
              help="also write the same bodies in this connectivity, under DIR/<topology>/ (repeatable); "
                   "subdiv: jittered midpoint subdivision of the main topology, its barycentric map in "
                   "DIR/subdiv/map.npz")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str), required=True, help="output folder")
@click.option("--jitter", type=click.FloatRange(min=0.0), default=1.0, show_default=True,
              help="scale of the random joint-angle perturbation around each key pose (0: exact key poses)")
@click.option("--pose-names", default=None, metavar="A,B,...", help="restrict to these key poses (see --list-poses)")
@click.option("--sheet/--no-sheet", default=True, show_default=True, help="write DIR/contact_sheet.png")
@click.option("--no-intersection-check", is_flag=True, help="skip the self-intersection check (faster)")
@click.option("--max-attempts", type=click.IntRange(min=1), default=10, show_default=True,
              help="resamples of a failing body before falling back to its key pose")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="bodies per anny forward pass")
@click.option("--device", default=None, help="torch device (default: cuda if available, else cpu)")
@click.option("--list-poses", is_flag=True, is_eager=True, expose_value=False, callback=_list_poses,
              help="list the key poses and exit")
@click.option("--quiet", is_flag=True, help="no progress bar")
def synth_anny(identities, poses, seed, topology, also, out_dir, jitter, pose_names, sheet, no_intersection_check,
               max_attempts, batch_size, device, quiet) -> None:
    """Generate IDENTITIES x POSES anny bodies, each identity's neutral body and per-mesh ground truth.

    Layout: DIR/meshes/<id>/<pose>_<j>.ply, DIR/neutral/<id>.ply, DIR/truth/<id>/<pose>_<j>.json,
    DIR/identities.csv, DIR/synth.json, DIR/<other topology>/..., DIR/contact_sheet.png
    (details: bodydata/generator/synth.py).
    """
    from bodydata.generator.synth import SynthError, run_synth

    names = [n.strip() for n in pose_names.split(",") if n.strip()] if pose_names else None
    try:
        summary = run_synth(
            out_dir, identities, poses, seed=seed, topology=topology, extra_topologies=tuple(dict.fromkeys(also)),
            sheet=sheet, progress=not quiet, jitter=jitter, pose_names=names,
            check_intersections=not no_intersection_check, max_attempts=max_attempts, batch_size=batch_size,
            device=device,
        )
    except SynthError as exc:
        raise click.ClickException(str(exc)) from None
    rate = summary.n_bodies / summary.seconds if summary.seconds > 0 else float("nan")
    click.echo(
        f"wrote {summary.n_bodies} bodies of {summary.n_identities} identities to {summary.out_dir} "
        f"in {summary.seconds:.1f} s ({rate:.1f} bodies/s); rejected samples {summary.n_rejected}, "
        f"fallbacks to key pose {summary.n_fallback}"
    )
    if summary.sheet is not None:
        click.echo(f"contact sheet: {summary.sheet}")


COMMANDS = [synth]
