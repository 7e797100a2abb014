"""``bodydata evaluate``: Table 2 and disentanglement of one or more runs on a dataset's test split, as a report."""
from __future__ import annotations

import click

from bodydata.cli._exit import CannotStart, exit_for_failures
from bodydata.evaluate.solvers import DEFAULT_JACOBIAN_EVERY, DEFAULT_STEPS, JACOBIAN_EVERY_HELP, SOLVERS

EXAMPLE = """
\b
Examples:
  bodydata evaluate --run runs/dhnn --dataset DS --out reports/dhnn
  bodydata evaluate --run runs/dhnn --run runs/baseline --run runs/meshvae --run runs/pca --dataset DS --out reports/all
  bodydata evaluate --run runs/dhnn --dataset DS --out reports/dhnn --markers my_markers.csv
  bodydata evaluate --run runs/dhnn --dataset DS --out reports/adam --solver adam --iterations 200

\b
Writes OUT/summary.csv (Table 2: MED mm mean, median, std, p95 per run and test set, encoder-only and Eq. 15 fit),
OUT/disentangle.csv, OUT/sparse.csv (Table 5: fits from the marker vertices alone), OUT/meshes.csv,
OUT/report.json, OUT/report.md, CED curves and error maps (PNG).
Exit status: 0 every run evaluated; 1 some runs failed (see report.md); 2 cannot start (no dataset, empty split).
"""


@click.command("evaluate", epilog=EXAMPLE)
@click.option("--run", "runs", required=True, multiple=True, type=click.Path(file_okay=False, path_type=str),
              help="a `bodydata train` run (repeat for several)")
@click.option("--dataset", required=True, type=click.Path(file_okay=False, path_type=str),
              help="the `bodydata build-dataset` folder the runs were trained on")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str), help="the report folder")
@click.option("--split", type=click.Choice(["test", "train", "all"]), default="test", show_default=True)
@click.option("--iterations", type=click.IntRange(min=0), default=None,
              help=f"Eq. 15 steps at most per mesh [default: {DEFAULT_STEPS['lm']} with lm, {DEFAULT_STEPS['adam']} with adam]")
@click.option("--solver", type=click.Choice(list(SOLVERS)), default="lm", show_default=True,
              help="Eq. 15's optimiser: Levenberg-Marquardt or Adam")
@click.option("--jacobian-every", type=click.IntRange(min=1), default=DEFAULT_JACOBIAN_EVERY, show_default=True,
              help=JACOBIAN_EVERY_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="meshes fitted at once")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="[default: CUDA when present]")
@click.option("--no-figures", is_flag=True, help="tables only (no CED curves or error maps)")
@click.option("--markers", default="landmarks", show_default=True,
              help="Table 5's marker set: 'landmarks' (the template's), a landmark CSV, or 'none' (skip)")
@click.option("--body-model/--no-body-model", default=True, show_default=True,
              help="add the row of anny itself fitted to the same meshes (phenotype and joint angles; anny templates)")
def evaluate_cmd(runs, dataset, out, split, iterations, solver, jacobian_every, batch_size, device, no_figures, markers, body_model) -> None:
    """Evaluate every RUN on the SPLIT meshes of DATASET and write the report to OUT."""
    from bodydata.errors import BodydataError
    from bodydata.evaluate.evaluation import evaluate_runs
    from bodydata.evaluate.fit import FitSettings

    try:
        ev = evaluate_runs(runs, dataset, out, FitSettings(iterations=iterations, solver=solver, jacobian_every=jacobian_every),
                           split=split, batch_size=batch_size,
                           device=device, figures=not no_figures, markers=None if markers == "none" else markers,
                           body_model=body_model)
    except BodydataError as exc:
        raise CannotStart(str(exc)) from None
    for r in ev.runs:
        if r.error:
            click.echo(f"  failed: {r.error}", err=True)
    click.echo(f"{out}: {len(ev.runs) - ev.n_failed} runs evaluated, {ev.n_failed} failed; see {out}/report.md")
    exit_for_failures(ev.n_failed)


COMMANDS = [evaluate_cmd]
