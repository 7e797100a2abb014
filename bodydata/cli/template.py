"""``bodydata template build|show``: build a reference template folder and inspect it (summary, checks, part PNG)."""
from __future__ import annotations

from pathlib import Path

import click


@click.group("template")
def template_group() -> None:
    """Reference templates: mesh + 16 body parts + landmarks (anny, anny-lite, scape)."""


@template_group.command("build")
@click.argument("name", type=click.Choice(["anny", "anny-lite", "scape"]))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Template folder to write.")
@click.option(
    "--mesh",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="scape: SCAPE-order 12,500-vertex mesh whose vertices are used (e.g. SCAPE mesh000.off).",
)
@click.option(
    "--faces",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="scape: mesh whose faces are used (the paper's triangulation, e.g. dhnn template_connectivity/0.obj).",
)
@click.option(
    "--labels",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="scape: SPRING body_part.obj (16 vertex colours) or a text file of 12,500 part labels.",
)
@click.option("--png/--no-png", default=True, show_default=True, help="Also render parts.png into the folder.")
def build_cmd(name: str, out: Path, mesh: Path | None, faces: Path | None, labels: Path | None, png: bool) -> None:
    """Build template NAME into the folder --out.

    \b
    anny       anny 'notoes' topology (12,272 vertices), rest pose, default phenotype
    anny-lite  anny 'notoes_collapse10pc' (1,229 vertices), for fast tests
    scape      the paper's reference, from --mesh, --faces and --labels
    """
    from bodydata.errors import BodydataError
    from bodydata.templates.template import build_template

    given = {k: v for k, v in (("mesh", mesh), ("faces", faces), ("labels", labels)) if v is not None}
    if name != "scape" and given:
        raise click.UsageError(f"--{', --'.join(given)} only apply to the scape template")
    try:
        tpl = build_template(name, given or None)
        tpl.save(out)
    except BodydataError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"built template {name}: {tpl.n_vertices} vertices, {tpl.n_faces} faces, {len(tpl.landmarks)} landmarks -> {out}")
    if png:
        _render(tpl, out / "parts.png")
        click.echo(f"wrote {out / 'parts.png'}")


@template_group.command("show")
@click.argument("template", type=str)
@click.option("--png", "png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the part render [default: TEMPLATE/parts.png; ./<name>_parts.png for a name].")
@click.option("--no-png", is_flag=True, help="Do not render.")
def show_cmd(template: str, png: Path | None, no_png: bool) -> None:
    """Summarise TEMPLATE (a folder, or anny / anny-lite), run the validity checks, render the parts.

    Exits with status 1 when a required check fails.
    """
    from bodydata.errors import BodydataError
    from bodydata.templates.template import load_template

    try:
        tpl = load_template(template)
        checks = tpl.checks()
    except BodydataError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"template {tpl.name} ({template})")
    click.echo(
        f"  {tpl.n_vertices} vertices, {tpl.n_faces} faces, units {tpl.units}, "
        f"up {tpl.up_axis}, front {tpl.front_axis}, subject's left {tpl.left_axis}"
    )
    graph = tpl.part_graph()
    click.echo(f"  parts ({len(tpl.part_names)}): id name vertices | adjacent parts (shared mesh edges)")
    for i, name in enumerate(tpl.part_names):
        nbrs = ", ".join(f"{tpl.part_names[j]} ({graph.edges[i, j]['n_edges']})" for j in sorted(graph[i]))
        click.echo(f"    {i:2d} {name:12s} {graph.nodes[i]['n_vertices']:6d} | {nbrs}")
    click.echo(f"  part graph: {graph.number_of_edges()} adjacencies")
    lms = ", ".join(f"{k}={v}" for k, v in tpl.landmarks.items())
    click.echo(f"  landmarks ({len(tpl.landmarks)}): {lms or 'none'}")
    click.echo("  checks:")
    failed = False
    for c in checks:
        tag = "ok" if c.ok else ("FAIL" if c.required else "note")
        failed |= c.required and not c.ok
        click.echo(f"    [{tag}] {c.name}" + (f": {c.detail}" if c.detail else ""))
    if not no_png:
        folder = Path(template)
        target = png or (folder / "parts.png" if folder.is_dir() else Path(f"{tpl.name}_parts.png"))
        _render(tpl, target)
        click.echo(f"  wrote {target}")
    if failed:
        raise SystemExit(1)


def _render(tpl, target: Path) -> None:
    from bodydata.templates.parts import PART_COLORS, part_colors
    from bodydata.viz.parts_render import render_mesh_views

    names, points = tpl.landmark_positions()
    render_mesh_views(
        tpl.vertices,
        tpl.faces,
        part_colors(tpl.part_labels),
        target,
        points=points,
        labels=names,
        up_axis=tpl.up_axis,
        front_axis=tpl.front_axis,
        title=f"template {tpl.name}: {tpl.n_vertices} vertices, 16 parts, {len(names)} landmarks",
        legend=list(zip(tpl.part_names, PART_COLORS)),
        dpi=150,
    )


COMMANDS = [template_group]
