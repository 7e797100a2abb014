"""The registration layer's one reader and writer of source manifests (``sources.csv``, ``lifted.csv``, hand lists).

Every source manifest the convert stage and ``bodydata prior build`` read goes through :func:`read_source_records`,
and every one they write through :func:`write_source_records`, so that where the row format lives is named here
only.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Sequence

from bodydata.errors import BodydataError
from bodydata.manifest.status import is_done
from bodydata.sources.base import COLUMNS, STATUS_FAILED, STATUS_OK, ManifestRow

__all__ = ["SOURCE_DONE", "SOURCE_FAILED", "read_source_records", "done_mesh_paths", "write_source_records"]

# the status words of a source manifest's rows, as its readers (neutralize, build-dataset) take them today
SOURCE_DONE = STATUS_OK
SOURCE_FAILED = STATUS_FAILED

_PATH_COLUMNS = ("path", "gt_path", "landmarks_path")


def read_source_records(path: str | Path, complete: bool = True) -> list[dict[str, str]]:
    """The rows of a source manifest as ``{column: text}`` with every ``COLUMNS`` key (missing ones ``""``), in file
    order; relative ``path`` / ``gt_path`` / ``landmarks_path`` values resolved against the manifest's folder.

    complete : require every ``COLUMNS`` column (a ``sources.csv``); otherwise a ``path`` column is enough (a
    ``lifted.csv`` or a hand-written list). Raises BodydataError naming the file when it is not one."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BodydataError(f"{p}: cannot read the manifest ({exc})") from None
    needed = COLUMNS if complete else ["path"]
    missing = [c for c in needed if c not in header]
    if missing:
        raise BodydataError(f"{p}: not a bodydata manifest (missing columns: {', '.join(missing)})")
    base = p.resolve().parent
    out = []
    for rec in rows:
        r = {c: str(rec.get(c) or "") for c in COLUMNS}
        for c in _PATH_COLUMNS:
            if r[c] and not Path(r[c]).is_absolute():
                r[c] = str(base / r[c])
        out.append(r)
    return out


def done_mesh_paths(path: str | Path) -> list[str]:
    """The mesh paths of a manifest's usable rows (status ``done``, legacy ``ok`` or empty), in file order."""
    return [r["path"] for r in read_source_records(path, complete=False) if r["path"] and is_done(r["status"])]


def write_source_records(path: str | Path, records: Sequence[Mapping[str, object]]) -> Path:
    """Write ``records`` ({column: value}, missing columns empty) as a source manifest, atomically."""
    from bodydata.sources.scan import write_manifest

    rows = []
    for r in records:
        rec = {c: str(r.get(c, "") or "") for c in COLUMNS}
        for c in ("n_vertices", "n_faces"):
            rec[c] = int(float(rec[c])) if rec[c] else None
        rows.append(ManifestRow(**rec))
    return write_manifest(path, rows)
