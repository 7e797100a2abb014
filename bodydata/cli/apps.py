"""``bodydata generate``, ``interpolate``, ``transfer``: bodies from a trained embedding, as meshes and a PNG sheet."""
from __future__ import annotations

import click

_DEVICE = click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="[default: CUDA when present]")
_BODY_HELP = "a codes file from `bodydata fit` (codes/NAME.npz) or a mesh in the template's connectivity (fitted first)"
_EXIT = "\n\\b\nExit status: 0 written; 2 cannot start (no run, unreadable body, a single-latent model for shape/pose).\n"


def _run_app(fn, *args, **kwargs) -> None:
    from bodydata.errors import BodydataError

    try:
        res = fn(*args, **kwargs)
    except BodydataError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    click.echo(f"{res.out}: {len(res.meshes)} meshes and {res.sheet.name}")


@click.command("generate", epilog="\n\\b\nExample:\n  bodydata generate --run runs/dhnn --out samples --n 16 --seed 3\n" + _EXIT)
@click.option("--run", required=True, type=click.Path(file_okay=False, path_type=str), help="a `bodydata train` run")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str), help="the output folder")
@click.option("--n", type=click.IntRange(min=1), default=8, show_default=True, help="how many bodies")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--scale", type=float, default=1.0, show_default=True, help="standard deviation of the prior samples")
@_DEVICE
def generate_cmd(run, out, n, seed, scale, device) -> None:
    """Sample N bodies from the prior of RUN's model."""
    from bodydata.evaluate.apps import generate

    _run_app(generate, run, out, n=n, seed=seed, scale=scale, device=device)


@click.command("interpolate", epilog="\n\\b\nExamples:\n  bodydata interpolate --run runs/dhnn --a fits/codes/a.npz "
               "--b fits/codes/b.npz --out path --steps 7 --extrapolate 0.25\n  bodydata interpolate --run runs/dhnn "
               "--a A.ply --b B.ply --out grid --grid\n" + _EXIT)
@click.option("--run", required=True, type=click.Path(file_okay=False, path_type=str), help="a `bodydata train` run")
@click.option("--a", "a", required=True, type=click.Path(dir_okay=False, path_type=str), help="start body: " + _BODY_HELP)
@click.option("--b", "b", required=True, type=click.Path(dir_okay=False, path_type=str), help="end body: " + _BODY_HELP)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str), help="the output folder")
@click.option("--steps", type=click.IntRange(min=2), default=5, show_default=True)
@click.option("--extrapolate", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="go this far beyond both ends (t from -e to 1 + e)")
@click.option("--grid", is_flag=True, help="a shape x pose grid (rows shape, columns pose) instead of one path")
@_DEVICE
def interpolate_cmd(run, a, b, out, steps, extrapolate, grid, device) -> None:
    """Decode the linear path (or the shape x pose grid) between the codes of bodies A and B."""
    from bodydata.evaluate.apps import interpolate

    _run_app(interpolate, run, a, b, out, steps=steps, extrapolate=extrapolate, grid=grid, device=device)


@click.command("transfer", epilog="\n\\b\nExample:\n  bodydata transfer --run runs/dhnn --shape A.ply --pose B.ply "
               "--out transfer\n" + _EXIT)
@click.option("--run", required=True, type=click.Path(file_okay=False, path_type=str), help="a `bodydata train` run")
@click.option("--shape", required=True, type=click.Path(dir_okay=False, path_type=str), help="shape from: " + _BODY_HELP)
@click.option("--pose", required=True, type=click.Path(dir_okay=False, path_type=str), help="pose from: " + _BODY_HELP)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str), help="the output folder")
@_DEVICE
def transfer_cmd(run, shape, pose, out, device) -> None:
    """Decode SHAPE's shape code with POSE's pose code."""
    from bodydata.evaluate.apps import transfer

    _run_app(transfer, run, shape, pose, out, device=device)


COMMANDS = [generate_cmd, interpolate_cmd, transfer_cmd]
