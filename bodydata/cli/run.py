"""``bodydata run PIPELINE``: run or resume a YAML pipeline on a local dask cluster, an existing one, or inline."""
from __future__ import annotations

import sys

import click

from bodydata.cli._exit import EXIT_CANNOT_START, EXIT_INTERRUPTED, exit_for_failures


@click.command("run")
@click.argument("pipeline", required=False)
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Output root (one folder per step). Default: the file's 'workdir', else bodydata-runs/<pipeline>.")
@click.option("--from", "from_step", metavar="STEP", default=None, help="Start at this step (earlier ones must have run).")
@click.option("--only", metavar="STEP", default=None, help="Run just this step.")
@click.option("--scheduler", metavar="ADDRESS", envvar="BODYDATA_SCHEDULER", default=None,
              help="'local' (default: a dask cluster of processes on this machine), 'synchronous' (in this process, "
                   "no dask), or a dask scheduler address tcp://HOST:PORT. Env: BODYDATA_SCHEDULER.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Local cluster worker processes (default: one per CPU, at most RAM/2 GiB); 0 = synchronous.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="BLAS/OpenMP/torch threads per dask worker (default 1; synchronous runs are not limited unless given).")
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Retries of an item after an unexpected error or a lost worker (bad input is not retried).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface the local cluster listens on; change it only to expose the cluster.")
@click.option("--dashboard", metavar="ADDRESS", default=None,
              help="Serve the dask dashboard of the local cluster (':8787' binds to --host). Default: off.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--list-stages", is_flag=True,
              help="List the registered stages (what each does, its options) and the shipped pipelines, then exit.")
def run_command(pipeline, workdir, from_step, only, scheduler, workers, threads, retries, host, dashboard,
                no_progress, list_stages):
    """Run (or resume) the pipeline file PIPELINE (a path, or the name of a shipped one such as anny-demo).

    Every step keeps a manifest in its folder; items already done with unchanged inputs are skipped, so the
    same command resumes an interrupted run. Prints "N done, K skipped, F failed" per step.

    Exit status: 0 when every item is done, 1 when some items failed (see the manifests' failed rows),
    2 for an invalid pipeline (every step's options are checked first, with the CLI's types and ranges) or a step
    that cannot start, 130 when interrupted.
    """
    from bodydata.errors import BodydataError
    from bodydata.pipeline.runner import (
        builtin_pipelines_dir,
        find_pipeline,
        load_pipeline,
        run_pipeline,
        stage_names,
        stage_summary,
    )
    from bodydata.pipeline.stage_options import options_class

    if list_stages:
        for name in sorted(stage_names()):
            click.echo(f"{name:15s} {stage_summary(name)}")
            cls = options_class(name)
            if cls is not None:
                import dataclasses

                click.echo(f"{'':15s}   options: {', '.join(f.name for f in dataclasses.fields(cls))}")
        shipped = sorted(p.stem for p in builtin_pipelines_dir().glob("*.yaml"))
        click.echo(f"shipped pipelines: {', '.join(shipped) or 'none'}")
        return
    if not pipeline:
        raise click.UsageError("give a pipeline file (or the name of a shipped pipeline, e.g. anny-demo)")
    try:
        pipe = load_pipeline(find_pipeline(pipeline))
        summaries = run_pipeline(
            pipe, workdir, from_step=from_step, only=only, scheduler=scheduler, workers=workers, threads=threads,
            host=host, dashboard=dashboard, retries=retries, progress=not no_progress, echo=click.echo,
        )
    except BodydataError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CANNOT_START)
    except KeyboardInterrupt:
        click.echo("interrupted: finished items are recorded; run the same command again to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    done = sum(s.done for s in summaries)
    skipped = sum(s.skipped for s in summaries)
    failed = sum(s.failed for s in summaries)
    click.echo(f"pipeline {pipe.name}: {done} done, {skipped} skipped, {failed} failed")
    exit_for_failures(failed)


COMMANDS = [run_command]
