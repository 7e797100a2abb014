"""The dataset build's per-mesh feature runner on the orchestration layer (dask workers or a cluster)."""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["orchestrated_runner", "STAGE_ITEMS"]

STAGE_ITEMS = "stage_items.json"


def _stage_items(path: str, ctx) -> list:
    """Item lister of the feature stage (module level so the stage pickles)."""
    from bodydata.pipeline.stage import Item

    with open(path, encoding="utf-8") as fh:
        return [Item(key=k, inputs=(p,)) for k, p in json.load(fh)]


def orchestrated_runner(scheduler: str | None = None, workers: int | None = None, executor=None):
    """A :data:`bodydata.dataset.build.FeatureRunner` that runs the per-mesh stage
    (:func:`bodydata.dataset.mesh_features.stage_process`) with :func:`bodydata.pipeline.orchestrate.run_stage`
    on ``executor``, or on one opened lazily from ``scheduler``/``workers``. The stage manifest is kept in the
    feature cache folder."""

    def run(jobs: list, cache_dir: Path, options: dict, progress: bool) -> dict[str, str]:
        import contextlib
        import functools

        from bodydata.dataset.mesh_features import FEATURE_VERSION, stage_process
        from bodydata.fsutil import atomic_write_text
        from bodydata.manifest.status import STATUS_DONE
        from bodydata.pipeline.manifest import read_rows
        from bodydata.pipeline.orchestrate import LazyExecutor, run_stage
        from bodydata.pipeline.stage import Stage, StageContext

        items_file = Path(cache_dir) / STAGE_ITEMS
        atomic_write_text(items_file, json.dumps([[k, str(p)] for k, p in jobs]) + "\n")
        stage = Stage(name="dataset-features", process=stage_process,
                      items=functools.partial(_stage_items, str(items_file)), options=options,
                      version=FEATURE_VERSION, description="ACAP f (n, 9) and coarse g (16, 9) of each mesh")
        with contextlib.ExitStack() as stack:
            ex = executor or stack.enter_context(LazyExecutor(scheduler, workers))
            run_stage(stage, StageContext(out_dir=Path(cache_dir)), ex, progress=progress)
        keys = {k for k, _ in jobs}
        return {r.item: r.reason or "failed" for r in read_rows(cache_dir) if r.item in keys and r.status != STATUS_DONE}

    return run
