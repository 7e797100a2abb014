"""Stage manifests: one CSV row per item (done/failed + reason, input hashes, outputs), a crash-proof journal, resume.

Layout in a stage's output folder (schema in docs/pipeline.md):

- ``manifest.csv`` — the current state, one row per item in the stage's item order; rewritten atomically.
- ``manifest.journal.jsonl`` — append-only log; every finished row is appended and fsync'ed the moment it
  arrives, so a crash (``kill -9``, power loss) loses no finished work. On load the CSV is read, then the
  journal is replayed over it (last line wins); a torn last line is ignored.
- ``.manifest.lock`` — an advisory lock (flock) held by the run using the folder.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from bodydata.errors import BodydataError
from bodydata.fsutil import atomic_write_text
from bodydata.manifest.status import STATUS_DONE, STATUSES

__all__ = [
    "MANIFEST_NAME",
    "JOURNAL_NAME",
    "FIXED_COLUMNS",
    "Row",
    "Manifest",
    "ManifestError",
    "read_rows",
    "done_rows",
    "read_manifest_frame",
]

MANIFEST_NAME = "manifest.csv"
JOURNAL_NAME = "manifest.journal.jsonl"
LOCK_NAME = ".manifest.lock"
FIXED_COLUMNS = ("item", "status", "reason", "input_hash", "input_stat", "outputs", "seconds", "finished_at")
OUTPUT_SEP = ";"


class ManifestError(BodydataError):
    """A manifest file is unreadable, or its folder is in use by another run."""


@dataclass
class Row:
    """One item's record.

    item : the item key.  status : "done" or "failed".  reason : one-line "Type: message" when failed, else "".
    input_hash : sha256 of the stage, its options, the item params and the input files' bytes ("" if unknown).
    input_stat : sha256 of the params and the inputs' (path, size, mtime_ns) — lets a re-run skip without re-reading.
    outputs : output paths relative to the stage folder.  seconds : wall time of the item on its worker.
    finished_at : UTC ISO-8601 time.  columns : the stage's result columns (str/int/float/bool/None values).
    """

    item: str
    status: str
    reason: str = ""
    input_hash: str = ""
    input_stat: str = ""
    outputs: tuple[str, ...] = ()
    seconds: float = 0.0
    finished_at: str = ""
    columns: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ManifestError(f"item {self.item!r}: unknown status {self.status!r} (expected done or failed)")
        self.outputs = tuple(self.outputs)
        self.reason = " ".join(str(self.reason).split())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Row":
        outputs = d.get("outputs") or ()
        if isinstance(outputs, str):
            outputs = tuple(o for o in outputs.split(OUTPUT_SEP) if o)
        seconds = d.get("seconds") or 0.0
        return cls(
            item=str(d["item"]),
            status=str(d["status"]),
            reason=str(d.get("reason") or ""),
            input_hash=str(d.get("input_hash") or ""),
            input_stat=str(d.get("input_stat") or ""),
            outputs=tuple(outputs),
            seconds=float(seconds),
            finished_at=str(d.get("finished_at") or ""),
            columns=dict(d.get("columns") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "status": self.status,
            "reason": self.reason,
            "input_hash": self.input_hash,
            "input_stat": self.input_stat,
            "outputs": list(self.outputs),
            "seconds": self.seconds,
            "finished_at": self.finished_at,
            "columns": self.columns,
        }

    def output_paths(self, folder: str | os.PathLike) -> list[Path]:
        """Absolute output paths (``folder`` = the stage's output folder)."""
        return [Path(folder) / o for o in self.outputs]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # shortest round-trip representation
    return str(v)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform/filesystem
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Manifest:
    """The manifest of one stage folder: rows by item key, the journal, the lock.

    Use as ``with Manifest.open(folder) as m: ...`` (takes the lock, loads, opens the journal), then
    :meth:`record` each finished row and :meth:`write_csv` at the end (and now and then).
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.csv_path = self.folder / MANIFEST_NAME
        self.journal_path = self.folder / JOURNAL_NAME
        self.rows: dict[str, Row] = {}
        self._journal = None
        self._lock_fh = None
        self.run_id: str = ""

    # -- loading ---------------------------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def open(cls, folder: str | os.PathLike, run_id: str = "") -> Iterator["Manifest"]:
        m = cls(folder)
        m.folder.mkdir(parents=True, exist_ok=True)
        m._acquire_lock()
        try:
            m.load()
            m.run_id = run_id
            m._journal = open(m.journal_path, "a", encoding="utf-8")
            if _ends_torn(m.journal_path):
                m._journal.write("\n")  # close a crashed run's partial line so the next record starts clean
            try:
                yield m
            finally:
                m._journal.close()
                m._journal = None
        finally:
            m._release_lock()

    def load(self) -> None:
        """Read the CSV (if any), then replay the journal over it."""
        self.rows = {}
        for row in _read_csv(self.csv_path):
            self.rows[row.item] = row
        for row in _read_journal(self.journal_path):
            self.rows[row.item] = row

    def _acquire_lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock
            return
        fh = open(self.folder / LOCK_NAME, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise ManifestError(f"{self.folder}: another bodydata run is using this stage folder") from None
        self._lock_fh = fh

    def _release_lock(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()  # closing the descriptor drops the flock
            self._lock_fh = None

    # -- writing ---------------------------------------------------------------------------------------------
    def record(self, row: Row, event: str = "finished") -> None:
        """Store ``row`` and append it to the journal, flushed and fsync'ed before returning.

        ``event`` is "finished" for work done in this run, "restat" when only ``input_stat`` was refreshed.
        """
        self.rows[row.item] = row
        if self._journal is None:
            raise ManifestError(f"{self.folder}: manifest is not open for writing (use Manifest.open)")
        line = json.dumps({"event": event, "run": self.run_id, **row.to_json()}, separators=(",", ":"))
        self._journal.write(line + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())

    def write_csv(self, order: Sequence[str] | None = None) -> None:
        """Rewrite ``manifest.csv`` atomically with the rows of ``order`` (item keys; default: all, sorted).

        Rows of items not in ``order`` are left out (they are no longer part of the stage). Columns: the fixed
        ones, then the result columns in sorted order.
        """
        keys = list(order) if order is not None else sorted(self.rows)
        rows = [self.rows[k] for k in keys if k in self.rows]
        extra = sorted({c for r in rows for c in r.columns})
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([*FIXED_COLUMNS, *extra])
        for r in rows:
            w.writerow(
                [
                    r.item,
                    r.status,
                    r.reason,
                    r.input_hash,
                    r.input_stat,
                    OUTPUT_SEP.join(r.outputs),
                    _cell(r.seconds),
                    r.finished_at,
                    *(_cell(r.columns.get(c)) for c in extra),
                ]
            )
        atomic_write_text(self.csv_path, buf.getvalue())
        _fsync_dir(self.folder)

    # -- queries ---------------------------------------------------------------------------------------------
    def is_current(self, key: str, input_stat: str) -> bool:
        """True when ``key`` is done, its stat fingerprint is ``input_stat`` and every output file exists."""
        row = self.rows.get(key)
        return (
            row is not None
            and row.status == STATUS_DONE
            and row.input_stat == input_stat
            and all((self.folder / o).exists() for o in row.outputs)
        )

    def counts(self, keys: Iterable[str] | None = None) -> dict[str, int]:
        rows = self.rows.values() if keys is None else (self.rows[k] for k in keys if k in self.rows)
        out = {s: 0 for s in STATUSES}
        for r in rows:
            out[r.status] += 1
        return out


def _ends_torn(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError:
        return False


def _read_csv(path: Path) -> list[Row]:
    if not path.exists():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in FIXED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ManifestError(f"{path}: not a stage manifest (missing columns {', '.join(missing)})")
            rows = []
            for rec in reader:
                cols = {k: v for k, v in rec.items() if k not in FIXED_COLUMNS and k is not None}
                rows.append(Row.from_dict({**rec, "columns": cols}))
            return rows
    except (csv.Error, UnicodeDecodeError, KeyError, ValueError) as exc:
        if isinstance(exc, ManifestError):
            raise
        raise ManifestError(f"{path}: unreadable manifest ({exc})") from None


def _read_journal(path: Path) -> Iterator[Row]:
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # torn final line of a crashed run
            try:
                rec = json.loads(line)
                yield Row.from_dict(rec)
            except (ValueError, KeyError, TypeError):
                continue  # a damaged line: its item is simply redone


def read_rows(folder: str | os.PathLike) -> list[Row]:
    """All rows of a stage folder (CSV + journal replay), in CSV order then journal-only items; no lock taken."""
    folder = Path(folder)
    rows: dict[str, Row] = {}
    for row in _read_csv(folder / MANIFEST_NAME):
        rows[row.item] = row
    for row in _read_journal(folder / JOURNAL_NAME):
        rows[row.item] = row
    return list(rows.values())


def done_rows(folder: str | os.PathLike) -> list[Row]:
    """The done rows of an upstream stage folder: what a downstream stage should read."""
    folder = Path(folder)
    if not (folder / MANIFEST_NAME).exists() and not (folder / JOURNAL_NAME).exists():
        raise ManifestError(f"{folder}: no stage manifest here (run the upstream stage first)")
    return [r for r in read_rows(folder) if r.status == STATUS_DONE]


def read_manifest_frame(folder: str | os.PathLike):
    """The manifest as a pandas DataFrame (fixed columns as strings, result columns with inferred dtypes)."""
    import pandas as pd

    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        raise ManifestError(f"{path}: no manifest")
    text_cols = [c for c in FIXED_COLUMNS if c != "seconds"]
    frame = pd.read_csv(path, dtype={c: str for c in text_cols})
    frame[text_cols] = frame[text_cols].fillna("")
    return frame
