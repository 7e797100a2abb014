"""The Stage abstraction: a pure per-item function (item -> output files + result columns) and its item lister.

A stage is run by :func:`bodydata.pipeline.orchestrate.run_stage`, which decides which items to (re)do from the
stage manifest, ships :func:`execute_item` calls to dask workers (or runs them inline) and records one manifest
row per item. Everything a worker receives (the :class:`Stage`, the :class:`Item`) is pickled, so ``process``
and ``items`` must be importable module-level callables (or ``functools.partial`` of them).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from bodydata.errors import BodydataError
from bodydata.fsutil import atomic_path, sha256_file
from bodydata.manifest.status import STATUS_DONE, STATUS_FAILED

__all__ = [
    "Item",
    "Stage",
    "StageContext",
    "ItemContext",
    "StageError",
    "execute_item",
    "params_digest",
    "stat_digest",
    "content_digest",
    "one_line",
]

# Result column names the manifest itself uses; a stage may not return them.
RESERVED_COLUMNS = ("item", "status", "reason", "input_hash", "input_stat", "outputs", "seconds", "finished_at")


class StageError(BodydataError):
    """A stage is misconfigured or returned something the manifest cannot hold."""


@dataclass(frozen=True)
class Item:
    """One unit of work.

    key : unique, stable id inside the stage (becomes the manifest's ``item`` column); no newline.
    inputs : files the result depends on; their contents (sha256) enter the input hash.
    params : JSON-serialisable per-item parameters (e.g. a seed); they enter the input hash.
    """

    key: str
    inputs: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key or any(c in self.key for c in "\r\n"):
            raise StageError(f"item key {self.key!r}: must be a non-empty one-line string")
        object.__setattr__(self, "inputs", tuple(str(p) for p in self.inputs))


@dataclass(frozen=True)
class StageContext:
    """What a stage's item lister sees.

    out_dir : the stage's output folder (holds its manifest).
    upstream : output folder of each earlier step of the pipeline, by step name (in pipeline order).
    input_dir : the output folder of the step this one reads (by default the previous step), or None.
    """

    out_dir: Path
    upstream: Mapping[str, Path] = field(default_factory=dict)
    input_dir: Path | None = None


@dataclass(frozen=True)
class Stage:
    """A per-item stage.

    name : stage name (registry name), used in messages and the input hash.
    process : ``process(item, ctx: ItemContext) -> Mapping[str, scalar] | None``; runs on a worker. It must be a
        pure function of the item (its files and params) and ``ctx.options``, write every output through
        ``ctx.output(relpath)`` (atomic), and raise ``BodydataError`` for bad input (recorded, not retried).
        Other exceptions are retried, then recorded.
    items : ``items(ctx: StageContext) -> Iterable[Item]``; runs in the driver, should be cheap (no mesh reads).
    options : JSON-serialisable options; everything that changes outputs must be here (they enter the input hash).
    version : bump it when the code's output changes, to invalidate earlier results.
    finish : optional ``finish(ctx: StageContext, rows: list[Row]) -> None``, run in the driver once the items are
        through (also when every item was skipped): stage-level files made from all rows of the current items, in
        item order (a summary table, a picture). It writes atomically into ``ctx.out_dir``; a ``BodydataError``
        stops the stage like an item-listing error.
    """

    name: str
    process: Callable[..., Mapping[str, Any] | None]
    items: Callable[[StageContext], Iterable[Item]]
    options: Mapping[str, Any] = field(default_factory=dict)
    version: str = "1"
    description: str = ""
    finish: Callable[..., None] | None = None


class ItemContext:
    """Handed to ``Stage.process``: the output folder, the options, and the atomic output writer.

    Attributes: ``out_dir`` (Path), ``options`` (Mapping), ``item`` (Item), ``outputs`` (list of relative paths
    written so far, in order).
    """

    def __init__(self, out_dir: Path, options: Mapping[str, Any], item: Item):
        self.out_dir = Path(out_dir)
        self.options = options
        self.item = item
        self.outputs: list[str] = []

    @contextlib.contextmanager
    def output(self, relpath: str | os.PathLike) -> Iterator[Path]:
        """Yield a temporary path to write; on success it is renamed onto ``out_dir / relpath`` and recorded.

        ``relpath`` is relative to the stage's output folder; it may contain sub-folders but not ``..``
        or ``;`` (the manifest's separator).
        """
        rel = Path(relpath)
        if rel.is_absolute() or ".." in rel.parts or ";" in str(rel) or not str(rel):
            raise StageError(f"output path {str(relpath)!r}: must be relative to the stage folder, without '..' or ';'")
        with atomic_path(self.out_dir / rel) as tmp:
            yield tmp
        name = rel.as_posix()
        if name not in self.outputs:
            self.outputs.append(name)

    def path(self, relpath: str | os.PathLike) -> Path:
        """Absolute path of an output (for reading back something this item wrote)."""
        return self.out_dir / relpath


def _canonical(obj: Any) -> str:
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError as exc:  # NaN/inf in options
        raise StageError(f"options/params are not JSON-serialisable: {exc}") from None


def params_digest(stage: Stage, item: Item) -> str:
    """sha256 of what defines the item apart from its files: stage name, version, options, item params."""
    blob = _canonical({"stage": stage.name, "version": stage.version, "options": stage.options, "params": item.params})
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def stat_digest(stage: Stage, item: Item, pdigest: str | None = None) -> str:
    """Cheap fingerprint: params digest + (absolute path, size, mtime_ns) of each input file.

    Used to skip a done row without re-reading its inputs; a missing input gives a fingerprint that matches nothing.
    """
    entries = []
    for p in item.inputs:
        try:
            st = os.stat(p)
            entries.append([os.path.abspath(p), st.st_size, st.st_mtime_ns])
        except OSError:
            entries.append([os.path.abspath(p), -1, -1])
    blob = _canonical({"p": pdigest or params_digest(stage, item), "f": entries})
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def content_digest(stage: Stage, item: Item, pdigest: str | None = None) -> str:
    """The input hash: params digest + sha256 of each input file's bytes (paths do not enter: moving data is fine).

    Raises ``BodydataError`` (via MeshError-like one-line message) when an input is missing or unreadable.
    """
    hashes = []
    for p in item.inputs:
        try:
            hashes.append(sha256_file(p))
        except OSError as exc:
            raise StageError(f"{p}: cannot read input ({exc.strerror or exc})") from None
    blob = _canonical({"p": pdigest or params_digest(stage, item), "h": hashes})
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def one_line(exc: BaseException) -> str:
    """``"Type: message"`` on one line (the manifest's ``reason``)."""
    msg = " ".join(str(exc).split())
    name = type(exc).__name__
    return f"{name}: {msg}" if msg else name


def _check_columns(stage: Stage, columns: Mapping[str, Any] | None) -> dict[str, Any]:
    if columns is None:
        return {}
    if not isinstance(columns, Mapping):
        raise StageError(f"stage {stage.name}: process() must return a mapping of result columns or None")
    out: dict[str, Any] = {}
    for k, v in columns.items():
        if not isinstance(k, str) or k in RESERVED_COLUMNS or not k or any(c in k for c in ",\r\n"):
            raise StageError(f"stage {stage.name}: result column {k!r} is reserved or not a plain name")
        if hasattr(v, "item") and callable(v.item) and getattr(v, "shape", None) == ():
            v = v.item()  # numpy scalar -> Python scalar
        if v is not None and not isinstance(v, (str, int, float, bool)):
            raise StageError(f"stage {stage.name}: result column {k!r} has a non-scalar value of type {type(v).__name__}")
        if isinstance(v, float) and not math.isfinite(v):
            v = str(v)  # keep JSON strict; CSV readers parse 'nan'/'inf'
        out[k] = v
    return out


def execute_item(stage: Stage, item: Item, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Run one item (on a worker or inline) and return its manifest row as a dict.

    ``BodydataError`` (a bad input, a stage that reports a reason) gives a ``failed`` row without a retry; any
    other exception propagates so the orchestrator can retry the task (a transient error, a lost worker).
    """
    t0 = time.perf_counter()
    pdig = params_digest(stage, item)
    row: dict[str, Any] = {"item": item.key, "input_stat": stat_digest(stage, item, pdig)}
    ctx = ItemContext(Path(out_dir), stage.options, item)
    try:
        row["input_hash"] = content_digest(stage, item, pdig)
        columns = _check_columns(stage, stage.process(item, ctx))
        row.update(status=STATUS_DONE, reason="", columns=columns)
    except BodydataError as exc:
        row.setdefault("input_hash", "")
        row.update(status=STATUS_FAILED, reason=one_line(exc), columns={})
    row["outputs"] = list(ctx.outputs)
    row["seconds"] = round(time.perf_counter() - t0, 4)
    row["finished_at"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return row
