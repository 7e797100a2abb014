"""Pipeline stage ``neutralize``: one item per subject of the source manifest, run in parallel on the workers."""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Iterator

from bodydata.pipeline.stage import Item, ItemContext, Stage, StageContext
from bodydata.pipeline.stage_options import NeutralizeOptions
from bodydata.pipeline.stage_scan import find_sources_csv
from bodydata.worker_cache import WorkerCache, cache_key

__all__ = ["make_stage"]

# Per worker process: building the template and prefactoring ARAP is the expensive part, done once.
_NEUTRALIZERS: WorkerCache = WorkerCache("neutralizers")


def _neutralizer(template: str, target: str, spring_dir: str | None, method: str = "auto"):
    def build():
        from bodydata.neutral.neutralize import NeutralConfig, Neutralizer, load_target
        from bodydata.templates import load_template

        tpl = load_template(template)
        return Neutralizer(tpl, load_target(target, tpl, spring_dir), NeutralConfig(method=method))

    return _NEUTRALIZERS.get(cache_key(template, target, spring_dir, method), build)


def _items(ctx: StageContext, manifest: str | None) -> Iterator[Item]:
    from bodydata.neutral.neutralize import read_subjects

    path = Path(manifest) if manifest else find_sources_csv(ctx.input_dir)
    for key, sub in sorted(read_subjects(path).items()):
        yield Item(key=key, inputs=tuple(str(p) for _, p in sub.poses),
                   params={"labels": [label for label, _ in sub.poses], "truth": sub.truth})


def _process(item: Item, ctx: ItemContext) -> dict[str, Any]:
    from bodydata.neutral.neutralize import neutralize_subject_files

    o = NeutralizeOptions(**ctx.options)
    neutralizer = _neutralizer(o.template, o.target, o.spring_dir, o.method)
    poses = list(zip(item.params["labels"], (Path(p) for p in item.inputs)))
    true = None
    if item.params.get("truth"):
        from bodydata.mesh import read_mesh

        true = read_mesh(item.params["truth"], expected_vertices=neutralizer.template.n_vertices).vertices
    row = neutralize_subject_files(neutralizer, item.key, poses, ctx.out_dir, png=o.png, truth=true)
    for rel in (row.get("output"), row.get("png")):
        if rel:
            ctx.outputs.append(Path(rel).as_posix())
    result = {k: v for k, v in row.items() if k not in ("subject", "status", "reason", "output", "png", "seconds")
              and isinstance(v, (str, int, float, bool))}
    result["solve_seconds"] = row.get("seconds", "")
    if true is not None:
        # Generated sources know the true neutral: report the construction error with the row.
        from bodydata.mesh import read_mesh
        from bodydata.mesh.alignment import mean_euclidean_distance

        built = read_mesh(ctx.out_dir / row["output"]).vertices
        result["med_to_truth_mm"] = round(1000.0 * mean_euclidean_distance(built, true, rigid=True), 3)
    return result


def _finish(ctx: StageContext, rows: list, manifest: str | None) -> None:
    """``neutral.csv`` in the step folder, as ``bodydata neutralize`` writes it (``build-dataset --neutral`` reads it)."""
    from bodydata.neutral.neutralize import CSV_NAME, read_subjects, write_neutral_csv

    path = Path(manifest) if manifest else find_sources_csv(ctx.input_dir)
    table = {}
    for r in rows:
        files = {Path(o).suffix: o for o in r.outputs}
        table[r.item] = {**r.columns, "subject": r.item, "status": r.status, "reason": r.reason,
                         "output": files.get(".ply", ""), "png": files.get(".png", "")}
    write_neutral_csv(ctx.out_dir / CSV_NAME, table, read_subjects(path))


def make_stage(template: str = "anny", target: str = "anny", manifest: str | None = None,
               spring_dir: str | None = None, png: bool = True, method: str = "auto") -> Stage:
    """``neutralize``: a neutral body per subject (ARAP with segment orientations; ``bodydata neutralize``)."""
    opts = NeutralizeOptions(template=template, target=target, manifest=manifest, spring_dir=spring_dir, png=png,
                             method=method)
    return Stage(
        name="neutralize", process=_process, items=functools.partial(_items, manifest=manifest),
        finish=functools.partial(_finish, manifest=manifest),
        options=dataclasses.asdict(opts),
        description="neutral pose per subject",
        version="2",  # 2: the body method's neutrals are re-articulated (NeutralConfig.rearticulate)
    )
