"""The registration layer's one reader and writer of source manifests (``sources.csv``, ``lifted.csv``, hand lists).

Every source manifest the convert stage and ``bodydata prior build`` read goes through :func:`read_source_records`,
and every one they write through :func:`write_source_records`, so that where the row format lives is named here
only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from bodydata.manifest.source_rows import COLUMNS, ManifestRow, read_source_rows, write_source_rows
from bodydata.manifest.status import is_done

__all__ = ["read_source_records", "done_mesh_paths", "write_source_records"]


def read_source_records(path: str | Path, complete: bool = True) -> list[dict[str, str]]:
    """The rows of a source manifest as ``{column: text}`` with every ``COLUMNS`` key (missing ones ``""``), in file
    order, relative paths resolved and statuses normalised (:func:`bodydata.manifest.source_rows.read_source_rows`).

    complete : require every ``COLUMNS`` column (a ``sources.csv``); otherwise a ``path`` column is enough (a
    ``lifted.csv`` or a hand-written list). Raises a one-line error naming the file when it is not one."""
    rows = read_source_rows(path, required=COLUMNS if complete else ("path",))
    return [{c: "" if v is None else str(v) for c, v in r.as_record().items()} for r in rows]


def done_mesh_paths(path: str | Path) -> list[str]:
    """The mesh paths of a manifest's usable rows (status ``done``, legacy ``ok`` or empty), in file order."""
    return [r["path"] for r in read_source_records(path, complete=False) if r["path"] and is_done(r["status"])]


def write_source_records(path: str | Path, records: Sequence[Mapping[str, object]]) -> Path:
    """Write ``records`` ({column: value}, missing columns empty) as a source manifest, atomically."""
    rows = []
    for r in records:
        rec = {c: str(r.get(c, "") or "") for c in COLUMNS}
        for c in ("n_vertices", "n_faces"):
            rec[c] = int(float(rec[c])) if rec[c] else None
        rows.append(ManifestRow(**rec))
    write_source_rows(path, rows)
    return Path(path)
