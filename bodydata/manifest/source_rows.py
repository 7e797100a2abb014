"""Source rows: one mesh per row (identity, file, topology, units, status), the CSV every mesh-listing command writes.

``bodydata sources scan`` writes them, ``bodydata neutralize`` writes its constructed neutrals as source rows
(``neutral.csv``), ``bodydata build-dataset`` and ``convert`` read them. Columns and their meanings:
``manifests/README.md``. This module is the only reader and writer of the format, and the only place that
says how a subject is keyed when sources are mixed (:func:`subject_key`).

Extra columns (a ``role`` column, the per-subject figures of ``neutral.csv``) are kept on read in
``ManifestRow.extra`` and written after the fixed columns.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterable, Sequence

from bodydata.errors import BodydataError
from bodydata.fsutil import atomic_write_text
from bodydata.manifest.status import STATUS_PENDING, normalise_status

__all__ = ["ManifestRow", "COLUMNS", "PATH_COLUMNS", "UNITS_NORMALIZED", "ManifestFormatError", "is_normalized",
           "read_source_rows", "read_source_table", "write_source_rows", "subject_key", "subject_keys"]

#: ``units`` of a row whose mesh was rescaled upstream to no physical unit (FAUST_r: one scale per shape): its size
#: says nothing about the body's, so a body fit leaves the scale free
UNITS_NORMALIZED = "normalized"


def is_normalized(units: str) -> bool:
    """Whether a ``units`` value says "no physical unit" (either spelling, any case: the column is free text)."""
    return units.strip().lower() in (UNITS_NORMALIZED, "normalised")

#: Columns holding file paths: written as given, resolved against the manifest's folder on read when relative.
PATH_COLUMNS = ("path", "gt_path", "landmarks_path")
_INT_COLUMNS = ("n_vertices", "n_faces")


class ManifestFormatError(BodydataError, ValueError):
    """A file is not a readable source-row manifest (``str(err)`` names the file and the reason)."""


@dataclass
class ManifestRow:
    """One mesh of a source. Column meanings and types: ``manifests/README.md``.

    Integer-valued identity fields (subject, pose, frame) are kept as strings so that ids such as
    DFAUST's ``50002`` or a missing value (empty string) round-trip through CSV unchanged.
    ``extra`` : columns beyond :data:`COLUMNS` (name -> text), in file order.
    """

    id: str
    source: str
    kind: str
    path: str
    topology: str
    subject: str = ""
    pose: str = ""
    sequence: str = ""
    frame: str = ""
    n_vertices: int | None = None
    n_faces: int | None = None
    sha256: str = ""
    units: str = "m"
    up_axis: str = "+y"
    gt_path: str = ""
    gt_kind: str = ""
    landmarks_path: str = ""
    status: str = STATUS_PENDING
    error: str = ""
    extra: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def as_record(self) -> dict:
        """The fixed columns as a dict (``None`` counts as empty text); ``extra`` is left out."""
        rec = asdict(self)
        rec.pop("extra")
        for key in _INT_COLUMNS:
            if rec[key] is None:
                rec[key] = ""
        return rec


COLUMNS: list[str] = [f.name for f in fields(ManifestRow) if f.name != "extra"]


def subject_key(source: str, subject: str, mixed: bool) -> str:
    """The key of a subject across a manifest: ``<source>_<subject>`` when the manifest mixes sources, else
    ``<subject>``. It names the subject's neutral (``neutral/<key>.ply``) and its neutralize row."""
    return f"{source}_{subject}" if mixed else subject


def subject_keys(rows: Sequence[ManifestRow]) -> list[str]:
    """:func:`subject_key` of every row of ONE manifest; whether sources are mixed is decided over all its rows
    (whatever their status or kind), so every reader of the file derives the same keys."""
    mixed = len({r.source for r in rows}) > 1
    return [subject_key(r.source, r.subject.strip(), mixed) for r in rows]


def _int_or_none(text: str, path: Path, line: int, column: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(float(text))
    except ValueError:
        raise ManifestFormatError(f"{path}: line {line}: column {column} is {text!r}, not an integer") from None


def read_source_rows(path: str | os.PathLike, required: Sequence[str] = tuple(COLUMNS)) -> list[ManifestRow]:
    """Rows of a source-row manifest, in file order.

    Statuses are normalised (legacy ``ok`` and an absent status -> ``done``); relative paths of
    :data:`PATH_COLUMNS` are resolved against the manifest's folder. ``required`` : the columns the file must
    have (default all of :data:`COLUMNS`; a hand-written pose list needs only ``subject`` and ``path``); an absent
    optional column reads as empty text. Raises :class:`ManifestFormatError` for a missing, empty or unreadable
    file, or one that lacks a required column.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestFormatError(f"{path}: manifest file does not exist" if not path.exists() else
                                  f"{path}: not a file, a manifest CSV is expected")
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # unreadable, or not text at all
        raise ManifestFormatError(f"{path}: cannot read manifest ({getattr(exc, 'strerror', None) or exc})") from None
    if not text.strip():
        raise ManifestFormatError(f"{path}: empty file, not a bodydata manifest (no header line)")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = list(reader.fieldnames or [])
        missing = [c for c in required if c not in header]
        if missing:
            raise ManifestFormatError(f"{path}: not a bodydata manifest (missing columns: {', '.join(missing)})")
        extra_cols = [c for c in header if c not in COLUMNS]
        base = path.resolve().parent
        rows = []
        for rec in reader:
            line = reader.line_num
            vals = {c: (rec.get(c) or "") for c in COLUMNS}
            for c in PATH_COLUMNS:
                v = vals[c]
                vals[c] = str(base / v) if v and not Path(v).is_absolute() else v
            for c in _INT_COLUMNS:
                vals[c] = _int_or_none(vals[c], path, line, c)
            vals["status"] = normalise_status(vals["status"])
            rows.append(ManifestRow(**vals, extra={c: rec.get(c) or "" for c in extra_cols}))
        return rows
    except csv.Error as exc:
        raise ManifestFormatError(f"{path}: not a readable CSV ({' '.join(str(exc).split())})") from None


def read_source_table(path: str | os.PathLike):
    """:func:`read_source_rows` as a pandas DataFrame: the fixed columns (text; ``n_vertices``/``n_faces`` as
    nullable ``Int64``), then the extra columns."""
    import pandas as pd

    rows = read_source_rows(path)
    extra = list(dict.fromkeys(k for r in rows for k in r.extra))
    table = pd.DataFrame([{**r.as_record(), **{k: r.extra.get(k, "") for k in extra}} for r in rows],
                         columns=[*COLUMNS, *extra])
    for col in _INT_COLUMNS:
        table[col] = pd.to_numeric(table[col], errors="coerce").astype("Int64")
    return table


def write_source_rows(path: str | os.PathLike, rows: Iterable[ManifestRow]) -> Path:
    """Write rows atomically: the :data:`COLUMNS`, then the extra columns of any row (empty where a row lacks one).

    Statuses are written in the one vocabulary (``ok`` becomes ``done``).
    """
    path = Path(path)
    rows = list(rows)
    extra = list(dict.fromkeys(k for r in rows for k in r.extra if k not in COLUMNS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*COLUMNS, *extra], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        rec = row.as_record()
        rec["status"] = normalise_status(rec["status"])
        writer.writerow({**rec, **{k: row.extra.get(k, "") for k in extra}})
    atomic_write_text(path, buf.getvalue())
    return path
