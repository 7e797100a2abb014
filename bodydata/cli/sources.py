"""``bodydata sources``: list the dataset adapters and scan a dataset folder into a manifest CSV."""
from __future__ import annotations

import click


@click.group("sources")
def sources() -> None:
    """Dataset source adapters: turn a dataset folder into manifest rows (see manifests/README.md)."""


@sources.command("list")
def list_sources() -> None:
    """List the source adapters with what each expects to find."""
    from bodydata.sources.base import adapter_names, get_adapter

    for name in adapter_names():
        adapter = get_adapter(name)
        click.echo(f"{name:10s} {adapter.description}")
        click.echo(f"{'':10s}   layout: {adapter.layout}")


@sources.command("scan")
@click.option("--source", "source", required=True, help="adapter name (see `bodydata sources list`)")
@click.option("--root", type=click.Path(file_okay=False, path_type=str), required=True, help="dataset folder")
@click.option("--out", type=click.Path(dir_okay=False, path_type=str), required=True, help="manifest CSV to write")
@click.option("--landmarks", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="folder source: landmark CSV (default: landmarks.csv in the root if present)")
@click.option("--units", default=None, help="folder source: units of the meshes (default m)")
@click.option("--up-axis", "up_axis", default=None, help="folder source: up axis such as +y (default: unknown)")
@click.option("--subject-regex", "subject_regex", default=None, metavar="REGEX",
              help="folder source: regular expression with a named group 'subject' (optional 'pose') matched "
                   "against each mesh path relative to ROOT without suffix, e.g. '(?P<subject>[^/]+)/(?P<pose>.+)'")
@click.option("--strict", is_flag=True, help="exit with status 1 if any mesh failed validation")
@click.option("--quiet", is_flag=True, help="no progress bar")
def scan(source: str, root: str, out: str, landmarks: str | None, units: str | None, up_axis: str | None,
         subject_regex: str | None, strict: bool, quiet: bool) -> None:
    """Scan ROOT with the SOURCE adapter: hash and validate every mesh, write the manifest to OUT."""
    from bodydata.errors import BodydataError
    from bodydata.cli._exit import CannotStart
    from bodydata.manifest.status import STATUS_FAILED
    from bodydata.sources.scan import scan_source

    given = {"landmarks": landmarks, "units": units, "up_axis": up_axis, "subject_regex": subject_regex}
    options = {k: v for k, v in given.items() if v is not None}
    try:
        result = scan_source(source, root, out, progress=not quiet, **options)
    except BodydataError as exc:
        raise CannotStart(str(exc)) from None
    click.echo(f"{out}: {len(result.rows)} rows, {result.n_ok} ok, {result.n_failed} failed")
    for row in result.rows:
        if row.status == STATUS_FAILED:
            click.echo(f"  failed: {row.error}", err=True)
    if strict and result.n_failed:
        raise SystemExit(1)


COMMANDS = [sources]
