"""Pipeline stage ``neutralize``: one item per subject of the source manifest, run in parallel on the workers."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Iterator

from bodydata.pipeline.stage import Item, ItemContext, Stage, StageContext
from bodydata.pipeline.stage_scan import find_sources_csv

__all__ = ["make_stage"]

# Per worker process: building the template and prefactoring ARAP is the expensive part, done once.
_NEUTRALIZERS: dict[str, Any] = {}


def _neutralizer(template: str, target: str, spring_dir: str | None):
    key = json.dumps([template, target, spring_dir])
    if key not in _NEUTRALIZERS:
        from bodydata.neutral.neutralize import Neutralizer, load_target
        from bodydata.templates import load_template

        tpl = load_template(template)
        _NEUTRALIZERS[key] = Neutralizer(tpl, load_target(target, tpl, spring_dir))
    return _NEUTRALIZERS[key]


def _true_neutrals(path: Path) -> dict[str, str]:
    """Subject -> path of its ground-truth neutral (``kind=neutral`` rows, e.g. the anny generator's)."""
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("kind") == "neutral" and r.get("status", "ok") == "ok"]
    sources = {r.get("source", "") for r in rows}
    return {(f"{r['source']}_{r['subject']}" if len(sources) > 1 else r["subject"]): r["path"] for r in rows}


def _items(ctx: StageContext, manifest: str | None) -> Iterator[Item]:
    from bodydata.neutral.neutralize import read_pose_manifest

    path = Path(manifest) if manifest else find_sources_csv(ctx.input_dir)
    truth = _true_neutrals(path)
    for subject, poses in sorted(read_pose_manifest(path).items()):
        yield Item(key=subject, inputs=tuple(str(p) for _, p in poses),
                   params={"labels": [label for label, _ in poses], "truth": truth.get(subject, "")})


def _process(item: Item, ctx: ItemContext) -> dict[str, Any]:
    from bodydata.neutral.neutralize import neutralize_subject_files

    o = ctx.options
    neutralizer = _neutralizer(o["template"], o["target"], o.get("spring_dir"))
    poses = list(zip(item.params["labels"], (Path(p) for p in item.inputs)))
    true = None
    if item.params.get("truth"):
        from bodydata.mesh import read_mesh

        true = read_mesh(item.params["truth"], expected_vertices=neutralizer.template.n_vertices).vertices
    row = neutralize_subject_files(neutralizer, item.key, poses, ctx.out_dir, png=bool(o.get("png", True)), truth=true)
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


def make_stage(template: str = "anny", target: str = "anny", manifest: str | None = None,
               spring_dir: str | None = None, png: bool = True) -> Stage:
    """``neutralize``: a neutral body per subject (ARAP with segment orientations; ``bodydata neutralize``)."""
    return Stage(
        name="neutralize", process=_process, items=functools.partial(_items, manifest=manifest),
        options={"template": template, "target": target, "manifest": manifest, "spring_dir": spring_dir, "png": png},
        description="neutral pose per subject",
    )
