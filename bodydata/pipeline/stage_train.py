"""Pipeline stage ``train``: the embedding trained on the previous step's dataset, as one resumable item.

A run cut short is continued, not restarted: the run folder's last checkpoint is resumed (``bodydata train --resume``).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Iterator

from bodydata.pipeline.stage import Item, ItemContext, Stage, StageContext, StageError
from bodydata.pipeline.stage_options import TrainOptions

__all__ = ["make_stage", "RUN_DIR", "dataset_folder"]

RUN_DIR = "run"


def dataset_folder(ctx: StageContext, dataset_step: str | None, stage: str = "train") -> Path:
    """The built dataset of ``dataset_step`` (default: the step this one reads)."""
    from bodydata.dataset.format import FILES

    base = ctx.upstream.get(dataset_step) if dataset_step else ctx.input_dir
    if base is None:
        raise StageError(f"{stage}: dataset step {dataset_step!r} is not an earlier step of the pipeline")
    for folder in (base / "dataset", base):
        if (folder / FILES["card_json"]).is_file():
            return folder
    raise StageError(f"{stage}: {base} holds no built dataset (no dataset/card.json)")


def _items(ctx: StageContext, dataset_step: str | None) -> Iterator[Item]:
    from bodydata.dataset.format import FILES

    ds = dataset_folder(ctx, dataset_step)
    yield Item(key=RUN_DIR, inputs=(str(ds / FILES["card_json"]), str(ds / FILES["scaling"])),
               params={"dataset": str(ds)})


def _process(item: Item, ctx: ItemContext) -> dict[str, Any]:
    from bodydata.model.run_format import RUN_FILES
    from bodydata.train.trainer import train

    o = TrainOptions(**ctx.options)
    run = ctx.out_dir / RUN_DIR
    resume = (run / RUN_FILES["config"]).is_file()
    if resume:
        from bodydata.model.run_format import read_run_card
        from bodydata.train.trainer import dataset_digest

        was = read_run_card(run).get("dataset", {}).get("digest")
        if was and was != dataset_digest(Path(item.params["dataset"])):
            raise StageError(f"{run}: this run was started on another build of the dataset; delete the folder to "
                             "train afresh on the new one")
    res = train(item.params["dataset"], run, config=None if resume else o.config, arch=None if resume else o.arch,
                epochs=o.epochs, resume=resume, progress=True, threads=o.threads, checkpoint_every=o.checkpoint_every)
    ctx.outputs.extend(f"{RUN_DIR}/{RUN_FILES[k]}" for k in ("config", "metrics", "curves", "card_md"))
    m = res.metrics
    return {"arch": res.arch, "epochs": res.epochs, "best_epoch": res.best_epoch,
            "train_l1_f": float(m.get("train_l1_f", "nan")), "test_l1_f": float(m.get("test_l1_f") or "nan"),
            "train_seconds": round(res.seconds, 1), "folder": str(run)}


def make_stage(arch: str | None = None, config: str | None = None, epochs: int | None = None, threads: int = 0,
               checkpoint_every: int = 1, dataset_step: str | None = None) -> Stage:
    """``train``: options as ``bodydata train`` (``config`` a YAML file, ``epochs`` the total)."""
    return Stage(
        name="train", process=_process, items=functools.partial(_items, dataset_step=dataset_step),
        options={"arch": arch, "config": config, "epochs": epochs, "threads": threads,
                 "checkpoint_every": checkpoint_every, "dataset_step": dataset_step},
        description="the body embedding trained on the dataset",
    )
