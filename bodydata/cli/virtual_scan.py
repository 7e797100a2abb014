"""``bodydata virtual-scan``: scan-like point clouds (or noisy meshes) of a mesh set, with the exact truth of every point."""
from __future__ import annotations

import click

from bodydata.cli._exit import CannotStart, exit_for_failures


@click.command("virtual-scan")
@click.option("--meshes", required=True, type=click.Path(exists=True, path_type=str),
              help="a folder of meshes or a source-row manifest CSV (its done rows)")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=str), help="output folder")
@click.option("--points", type=click.IntRange(100, 10_000_000), default=200_000, show_default=True,
              help="about this many points per scan (the pixel pitch is sized for it)")
@click.option("--views", type=click.IntRange(1, 64), default=4, show_default=True, help="sensors around the body")
@click.option("--noise-mm", type=click.FloatRange(0.0, 1000.0, max_open=True), default=1.0, show_default=True,
              help="depth noise std at the sensor distance (2 m); grows with depth squared")
@click.option("--max-incidence", type=click.FloatRange(0.0, 90.0, min_open=True), default=75.0, show_default=True,
              help="degrees; surfaces seen more obliquely are holes")
@click.option("--floor/--no-floor", default=True, show_default=True, help="a floor patch under the feet")
@click.option("--faces", type=click.Choice(["none", "noisy"]), default="none", show_default=True,
              help="none: point clouds; noisy: each view's pixel grid triangulated, depth jumps left open")
@click.option("--up-axis", type=click.Choice(["+x", "-x", "+y", "-y", "+z", "-z"]), default="+z", show_default=True,
              help="feet-to-head axis of meshes whose input row does not say (a folder's meshes)")
@click.option("--backend", type=click.Choice(["numpy", "open3d"]), default="numpy", show_default=True,
              help="ray casting: numpy, or open3d (optional extra bodydata[open3d])")
@click.option("--landmarks", type=click.Choice(["none", "carry"]), default="none", show_default=True,
              help="carry: the source meshes' landmarks (their CSV, or their topology's shipped one) as scan points")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="noise seed (same seed: same files)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def virtual_scan(meshes, out_dir, points, views, noise_mm, max_incidence, floor, faces, up_axis, backend, landmarks,
                 seed, quiet) -> None:
    """Scan every mesh with a virtual depth-sensor rig: DIR/scans/<name>.ply, DIR/truth/<name>.npz (the face and
    barycentrics of every point on its source mesh) and DIR/scans.csv (a source manifest that ``bodydata convert``
    reads; a mesh that could not be scanned is a failed row). Details: bodydata/generator/virtual_scan.py."""
    from bodydata.errors import BodydataError
    from bodydata.generator.virtual_scan import scan_meshes
    from bodydata.manifest.status import is_done
    from bodydata.mesh.scanner import ScannerConfig

    config = ScannerConfig(n_points=points, n_views=views, noise_mm=noise_mm, max_incidence=max_incidence,
                           floor=floor, faces=faces, up_axis=up_axis, backend=backend, seed=seed)
    try:
        result = scan_meshes(meshes, out_dir, config, landmarks=landmarks, progress=not quiet)
    except BodydataError as exc:
        raise CannotStart(str(exc)) from None
    done = [r for r in result.rows if is_done(r.status)]
    n_pts = [int(r.extra["n_points"]) for r in done]
    click.echo(f"scanned {len(done)} of {len(result.rows)} meshes into {out_dir}"
               + (f" ({min(n_pts)}-{max(n_pts)} points each)" if n_pts else "") + f"; list: {result.csv}")
    for r in result.rows:
        if not is_done(r.status):
            click.echo(f"failed: {r.error}", err=True)
    exit_for_failures(result.n_failed)


COMMANDS = [virtual_scan]
