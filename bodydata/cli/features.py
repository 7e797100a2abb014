"""``bodydata features`` and ``bodydata reconstruct``: ACAP features of a mesh set, and meshes back from them."""
from __future__ import annotations

from pathlib import Path

import click


def _load_template(spec: str, parts: Path | None):
    """(vertices, faces, part_labels | None, name) from a template name/folder or a mesh file (+ parts CSV)."""
    p = Path(spec)
    if p.is_file():
        from bodydata.mesh import read_mesh

        mesh = read_mesh(p)
        labels = None
        if parts is not None:
            from bodydata.templates.parts import read_parts_csv

            labels = read_parts_csv(parts, len(mesh.vertices))
        return mesh.vertices, mesh.faces, labels, str(p)
    from bodydata.templates import load_template

    tpl = load_template(spec)
    return tpl.vertices, tpl.faces, tpl.part_labels, tpl.name


@click.command("features")
@click.option("--template", "template", required=True,
              help="Template name (anny, anny-lite), template folder, or a reference mesh file (with --parts).")
@click.option("--meshes", required=True, type=click.Path(exists=True, path_type=Path),
              help="Folder of meshes (.obj/.ply/.off, natural order), a manifest CSV (the path of every done row) "
                   "or a text list (one path per line).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Features file (.npz) to write.")
@click.option("--coarse", is_flag=True, help="Also compute the 16-part coarse features g (needs the template's parts).")
@click.option("--compat", type=click.Choice(["acap-cpp"]), default=None,
              help="Follow the ACAP authors' C++ conventions (vertex 0 keeps its principal log).")
@click.option("--consistency", type=click.Choice(["fast", "exact", "none"]), default="fast", show_default=True,
              help="Rotation consistency: fast graph method, exact solvers (slow), or principal logs.")
@click.option("--weighting", type=click.Choice(["acap", "cotangent", "uniform"]), default="acap", show_default=True,
              help="Edge weights of the per-vertex fit and of the reconstruction.")
@click.option("--parts", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="With a mesh file as --template: CSV vertex_id,part_id of its parts.")
@click.option("--acap-txt", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write LOGRNEW.txt and S.txt (the C++ code's format) into this folder.")
def features_cmd(template: str, meshes: Path, out: Path, coarse: bool, compat: str | None, consistency: str,
                 weighting: str, parts: Path | None, acap_txt: Path | None) -> None:
    """Compute ACAP features f (and coarse g) of meshes in the template's connectivity."""
    from bodydata.errors import BodydataError
    from bodydata.features.acap import FEATURE_LAYOUT, AcapExtractor
    from bodydata.features.files import extract_files, list_meshes, save_features

    try:
        verts, faces, labels, name = _load_template(template, parts)
        if coarse and labels is None:
            raise click.UsageError("--coarse needs part labels (a template with parts, or --parts)")
        ext = AcapExtractor(verts, faces, labels if coarse else None, weighting=weighting, consistency=consistency,
                            compat=compat)
        files = list_meshes(meshes)
        res = extract_files(ext, files, coarse=coarse)
        meta = {"layout": list(FEATURE_LAYOUT), "n_vertices": int(len(verts)), "weighting": ext.weighting,
                "compat": compat, "consistency": consistency, "template": name}
        save_features(out, res.f, [p.stem for p in files], meta, res.g,
                      {"axis_cost": res.axis_cost, "turn_cost": res.turn_cost})
        if acap_txt is not None:
            from bodydata.features.compat import write_acap_txt

            acap_txt.mkdir(parents=True, exist_ok=True)
            write_acap_txt(res.f, acap_txt / "LOGRNEW.txt", acap_txt / "S.txt")
    except BodydataError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{len(files)} meshes, {len(verts)} vertices -> f {res.f.shape}" + (f", g {res.g.shape}" if coarse else "")
               + f" -> {out}")


@click.command("reconstruct")
@click.option("--template", "template", required=True, help="The template the features were computed with.")
@click.option("--features", "features", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Features file written by `bodydata features` (.npz), or the f.npy of a `bodydata build-dataset` "
                   "folder (unscaled; names from its pairs.csv).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for the meshes.")
@click.option("--format", "fmt", type=click.Choice(["ply", "obj", "off"]), default="ply", show_default=True)
@click.option("--device", default=None, help="torch device (default: cuda if available, else cpu).")
def reconstruct_cmd(template: str, features: Path, out: Path, fmt: str, device: str | None) -> None:
    """Reconstruct meshes from ACAP features, as in the paper's Eq. 5-6 (template vertex 0 stays in place)."""
    from bodydata.dataset.reconstruct_input import reconstruct_feature_file
    from bodydata.errors import BodydataError

    try:
        verts, faces, _, _ = _load_template(template, None)
        paths = reconstruct_feature_file(verts, faces, features, out, suffix=f".{fmt}", device=device)
    except BodydataError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{len(paths)} meshes -> {out}")


COMMANDS = [features_cmd, reconstruct_cmd]
