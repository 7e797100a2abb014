"""``bodydata build-dataset``: manifests -> paired, split, scaled, memory-mappable training set (docs/dataset.md)."""
from __future__ import annotations


import click

from bodydata.dataset.split import SPLIT_METHODS


@click.command("build-dataset")
@click.argument("more_inputs", nargs=-1, type=click.Path(dir_okay=False, path_type=str))
@click.option("--inputs", "inputs", multiple=True, type=click.Path(dir_okay=False, path_type=str),
              help="manifest CSV (repeat, or list several after it); rows are pose meshes unless marked neutral")
@click.option("--neutral", "neutral", multiple=True, type=click.Path(dir_okay=False, path_type=str),
              help="manifest CSV whose rows are all neutral meshes (repeatable)")
@click.option("--template", required=True, help="template name (anny, anny-lite) or template folder")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str), help="dataset folder to write")
@click.option("--split", "split", type=click.Choice(SPLIT_METHODS), default="paper", show_default=True,
              help="paper: random neutral/pose test pairs; subject: no identity in both train and test")
@click.option("--test-neutral", type=click.IntRange(min=0), default=160, show_default=True,
              help="neutral test pairs (at least, for --split subject)")
@click.option("--test-pose", type=click.IntRange(min=0), default=160, show_default=True,
              help="pose test pairs (at least, for --split subject)")
@click.option("--test-subjects", default=None, metavar="REGEX",
              help="--split subject: exactly the identities whose key matches this regular expression are tested "
                   "(e.g. 'faust/[67]'; the test counts are then not used)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the split")
@click.option("--workers", type=int, default=None,
              help="local worker processes for the features (0 = in this process; default: one per CPU)")
@click.option("--scheduler", default=None, help="dask scheduler address, 'local' or 'inline' (default $BODYDATA_SCHEDULER or local)")
@click.option("--quiet", is_flag=True, help="no progress bars")
def build_dataset_cmd(more_inputs, inputs, neutral, template, out, split, test_neutral, test_pose, test_subjects,
                      seed, workers, scheduler, quiet) -> None:
    """Compute f and g of every mesh, pair pose meshes with their subject's neutral, split, scale and write OUT.

    Manifests are source rows (`bodydata sources scan`, `bodydata neutralize`'s neutral.csv). Exit status: 0 every
    input row is in the dataset, 1 some rows were left out (failures.csv), 2 bad input (nothing written).
    """
    from pathlib import Path

    from bodydata.cli._exit import CannotStart, exit_for_failures
    from bodydata.dataset.build import build_dataset
    from bodydata.dataset.mesh_features import compute_inline
    from bodydata.dataset.split import check_test_subjects
    from bodydata.errors import BodydataError
    from bodydata.manifest.source_rows import read_source_rows
    from bodydata.pipeline.feature_runner import orchestrated_runner
    from bodydata.templates.template import load_template

    all_inputs = list(inputs) + list(more_inputs)
    if not all_inputs and not neutral:
        raise click.UsageError("give at least one manifest with --inputs (or --neutral)")
    try:
        # Bad input is reported before OUT is made: an unreadable manifest, then an unknown template.
        check_test_subjects(split, test_subjects)
        for manifest in [*all_inputs, *neutral]:
            read_source_rows(manifest)
        load_template(template)
    except BodydataError as exc:
        raise CannotStart(str(exc)) from None
    inline = workers == 0 or (scheduler or "").strip().lower() in ("inline", "synchronous", "sync")
    runner = compute_inline if inline else orchestrated_runner(scheduler, workers)
    existed = Path(out).exists()
    try:
        res = build_dataset(all_inputs, template, out, neutral_inputs=list(neutral), split=split,
                            n_test_neutral=test_neutral, n_test_pose=test_pose, seed=seed, runner=runner,
                            test_subjects=test_subjects,
                            progress=not quiet)
    except BodydataError as exc:
        if not existed and Path(out).is_dir() and not any(Path(out).iterdir()):
            Path(out).rmdir()  # an impossible split stops the build before it writes anything
        raise CannotStart(str(exc)) from None
    t = res.counts["total"]
    feat = res.features.line()
    click.echo(f"{out}: {res.n_pairs} pairs ({t['neutral']} neutral: {t['neutral_train']} train / {t['neutral_test']} test; "
               f"{t['pose']} pose: {t['pose_train']} train / {t['pose_test']} test); features: {feat}; "
               f"{len(res.failures)} input rows left out")
    for fl in res.failures[:10]:
        click.echo(f"  left out: {fl.id} ({fl.stage}): {fl.reason}", err=True)
    if len(res.failures) > 10:
        click.echo(f"  ... {len(res.failures) - 10} more in {out}/failures.csv", err=True)
    exit_for_failures(len(res.failures))


COMMANDS = [build_dataset_cmd]
