"""Pipeline stage ``build-dataset``: pose meshes of the source manifest + constructed neutrals -> training set."""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Iterator

from bodydata.manifest.status import STATUS_DONE
from bodydata.pipeline.manifest import read_rows
from bodydata.pipeline.stage import Item, ItemContext, Stage, StageContext, StageError
from bodydata.pipeline.stage_options import DatasetOptions
from bodydata.pipeline.stage_scan import find_sources_csv

__all__ = ["make_stage", "INPUTS_CSV"]

INPUTS_CSV = "inputs.csv"


def _items(ctx: StageContext, sources_step: str | None, neutral_step: str | None) -> Iterator[Item]:
    def step_dir(name: str | None, what: str) -> Path | None:
        if name is None:
            return None
        if name not in ctx.upstream:
            raise StageError(f"build-dataset: {what} step {name!r} is not an earlier step of the pipeline")
        return ctx.upstream[name]

    sources_dir = step_dir(sources_step, "sources") or ctx.input_dir
    sources = find_sources_csv(sources_dir)
    inputs = [str(sources)]
    neutral_dir = step_dir(neutral_step, "neutral")
    if neutral_dir is not None:
        rows = [r for r in read_rows(neutral_dir) if r.status == STATUS_DONE]
        inputs += [str(neutral_dir / out) for r in rows for out in r.outputs if out.endswith(".ply")]
    yield Item(key="dataset", inputs=tuple(inputs),
               params={"sources": str(sources), "neutral_dir": str(neutral_dir) if neutral_dir else ""})


def _combined_manifest(sources_csv: str, neutral_dir: str, path: Path) -> None:
    """Pose rows of the source manifest (role pose) + one row per constructed neutral (role neutral).

    With a neutral step, ground-truth neutrals of the source (``kind=neutral``) are left out: the dataset is built
    the way it would be from real scans, from the constructed neutrals. A neutral step's items are the subject
    keys of :func:`bodydata.neutral.neutralize.read_subjects` over the same manifest.
    """
    from bodydata.fsutil import sha256_file
    from bodydata.manifest.source_rows import read_source_rows, write_source_rows
    from bodydata.neutral.neutralize import constructed_neutral_row, read_subjects

    rows = read_source_rows(sources_csv)
    if neutral_dir:
        subjects = read_subjects(sources_csv)
        rows = [r for r in rows if r.kind != "neutral"]
        for r in rows:
            r.extra["role"] = "pose"
        for done in read_rows(Path(neutral_dir)):
            mesh = next((o for o in done.outputs if o.endswith(".ply")), None)
            if done.status != STATUS_DONE or done.item not in subjects or mesh is None:
                continue
            full = (Path(neutral_dir) / mesh).resolve()
            row = constructed_neutral_row(subjects[done.item], full, sha256_file(full))
            row.extra["role"] = "neutral"
            rows.append(row)
    write_source_rows(path, rows)


def _process(item: Item, ctx: ItemContext) -> dict[str, Any]:
    from bodydata.dataset.build import build_dataset
    from bodydata.dataset.mesh_features import compute_inline
    from bodydata.pipeline.feature_runner import orchestrated_runner
    from bodydata.pipeline.orchestrate import executor_of_this_task

    o = DatasetOptions(**ctx.options)
    with ctx.output(INPUTS_CSV) as tmp:
        _combined_manifest(item.params["sources"], item.params["neutral_dir"], tmp)
    # On a dask worker the features are spread over the run's cluster, as `bodydata build-dataset` spreads them
    # over its own; an inline run computes them here (as `build-dataset --workers 0`). Same files either way.
    with executor_of_this_task() as executor:
        runner = compute_inline if executor is None else orchestrated_runner(executor=executor)
        res = build_dataset(
            [ctx.out_dir / INPUTS_CSV], o.template, ctx.out_dir / "dataset", split=o.split,
            n_test_neutral=o.test_neutral, n_test_pose=o.test_pose, seed=o.seed, runner=runner, progress=True,
            test_subjects=o.test_subjects,
        )
    ctx.outputs.append("dataset/card.json")
    return {"pairs": int(getattr(res, "n_pairs", 0) or 0), "folder": str(ctx.out_dir / "dataset")}


def make_stage(template: str = "anny", split: str = "subject", test_neutral: int = 2, test_pose: int = 20,
               seed: int = 0, sources_step: str | None = None, neutral_step: str | None = None,
               test_subjects: str | None = None) -> Stage:
    """``build-dataset``: features, pairs, split and scaling (``bodydata build-dataset``) inside a pipeline."""
    opts = DatasetOptions(template=template, split=split, test_neutral=test_neutral, test_pose=test_pose, seed=seed,
                          sources_step=sources_step, neutral_step=neutral_step, test_subjects=test_subjects)
    return Stage(
        name="build-dataset", process=_process,
        items=functools.partial(_items, sources_step=sources_step, neutral_step=neutral_step),
        options=dataclasses.asdict(opts),
        description="paired, split, scaled training set",
    )
