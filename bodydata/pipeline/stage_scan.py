"""Pipeline stage ``sources-scan``: a dataset folder -> the source manifest ``sources.csv`` (one resumable item)."""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Iterator

from bodydata.pipeline.stage import Item, ItemContext, Stage, StageContext, StageError
from bodydata.pipeline.stage_options import ScanOptions

__all__ = ["make_stage", "SOURCES_CSV", "find_sources_csv"]

SOURCES_CSV = "sources.csv"


def find_sources_csv(folder: Path) -> Path:
    """The source manifest a ``sources-scan`` step wrote in ``folder``."""
    path = Path(folder) / SOURCES_CSV
    if not path.is_file():
        raise StageError(f"{folder}: no {SOURCES_CSV} (put a sources-scan step before this one)")
    return path


def _root(ctx: StageContext, root: str | None) -> Path:
    if root:
        return Path(root)
    if ctx.input_dir is None:
        raise StageError("sources-scan: give the 'root' option (the dataset folder) or put the step after synth")
    # After a synth step the bodies live in <synth step>/bodies.
    sub = ctx.input_dir / "bodies"
    return sub if sub.is_dir() else ctx.input_dir


def _items(ctx: StageContext, root: str | None) -> Iterator[Item]:
    folder = _root(ctx, root)
    marker = folder / "synth.json"
    # The generator's summary file changes whenever its bodies do, so it stands for the folder's content.
    yield Item(key="scan", inputs=(str(marker),) if marker.is_file() else (), params={"root": str(folder.resolve())})


def _process(item: Item, ctx: ItemContext) -> dict[str, Any]:
    from bodydata.manifest.source_rows import write_source_rows
    from bodydata.manifest.status import is_done
    from bodydata.sources.scan import scan_source

    o = ScanOptions(**ctx.options)
    with ctx.output(SOURCES_CSV) as tmp:
        res = scan_source(o.source, item.params["root"], out=None, progress=True, **dict(o.adapter_options or {}))
        write_source_rows(tmp, res.rows)
    failed = sum(not is_done(r.status) for r in res.rows)
    return {"rows": len(res.rows), "ok": len(res.rows) - failed, "failed_rows": failed}


def make_stage(source: str, root: str | None = None, adapter_options: dict | None = None) -> Stage:
    """``sources-scan``: run the ``source`` adapter over ``root`` (default: the previous step's output)."""
    opts = ScanOptions(source=source, root=root, adapter_options=dict(adapter_options or {}))
    return Stage(
        name="sources-scan", process=_process, items=functools.partial(_items, root=root),
        options=dataclasses.asdict(opts),
        description=f"manifest of the {source} meshes",
    )
