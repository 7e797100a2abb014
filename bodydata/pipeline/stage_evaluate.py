"""Pipeline stage ``evaluate``: the trained run measured on its dataset's test split, as one report (``bodydata evaluate``)."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Iterator

from bodydata.evaluate.solvers import DEFAULT_JACOBIAN_EVERY
from bodydata.pipeline.stage import Item, ItemContext, Stage, StageContext, StageError
from bodydata.pipeline.stage_options import EvaluateOptions

__all__ = ["make_stage", "REPORT_DIR"]

REPORT_DIR = "report"


def _items(ctx: StageContext, train_step: str | None, dataset_step: str | None) -> Iterator[Item]:
    from bodydata.dataset.format import FILES
    from bodydata.model.run_format import checkpoint_path
    from bodydata.pipeline.stage_train import RUN_DIR, dataset_folder

    base = ctx.upstream.get(train_step) if train_step else ctx.input_dir
    if base is None:
        raise StageError(f"evaluate: train step {train_step!r} is not an earlier step of the pipeline")
    run = base / RUN_DIR
    ds = dataset_folder(ctx, dataset_step, "evaluate")
    yield Item(key=REPORT_DIR, inputs=(str(checkpoint_path(run, "best")), str(ds / FILES["card_json"])),
               params={"run": str(run), "dataset": str(ds)})


def _process(item: Item, ctx: ItemContext) -> dict[str, Any]:
    from bodydata.evaluate.evaluation import evaluate_runs
    from bodydata.evaluate.fit import FitSettings

    o = EvaluateOptions(**ctx.options)
    ev = evaluate_runs([item.params["run"]], item.params["dataset"], ctx.out_dir / REPORT_DIR,
                       FitSettings(iterations=o.iterations, solver=o.solver, jacobian_every=o.jacobian_every),
                       figures=o.figures, body_model=o.body_model)
    if ev.n_failed:
        raise StageError(ev.runs[0].error)
    ctx.outputs.extend(str(Path(p).relative_to(ctx.out_dir)) for p in ev.files if Path(p).is_relative_to(ctx.out_dir))
    return {"report": str(ctx.out_dir / REPORT_DIR / "report.md")}


def make_stage(iterations: int | None = None, figures: bool = True, body_model: bool = True,
               train_step: str | None = None, dataset_step: str | None = None, solver: str = "lm",
               jacobian_every: int = DEFAULT_JACOBIAN_EVERY) -> Stage:
    """``evaluate``: options as ``bodydata evaluate`` (``iterations`` of the Eq. 15 fit per mesh, None: the
    ``solver``'s default; ``body_model``: anny's own row, ``--body-model/--no-body-model``)."""
    return Stage(
        name="evaluate", process=_process,
        items=functools.partial(_items, train_step=train_step, dataset_step=dataset_step),
        options={"iterations": iterations, "solver": solver, "jacobian_every": jacobian_every, "figures": figures, "body_model": body_model,
                 "train_step": train_step, "dataset_step": dataset_step},
        description="the trained run on the test split: Table-2 MED, disentanglement, report",
    )
