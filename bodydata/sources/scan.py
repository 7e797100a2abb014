"""Scan a dataset folder with a source adapter: hash and validate every mesh, write the manifest CSV.

A mesh that cannot be read, or fails its topology's checks, becomes a row with ``status=failed`` and a
one-line ``error``; the scan goes on. Only a folder that does not look like the source at all
raises (``SourceError``). The manifest is written atomically; its columns are documented in
``manifests/README.md``.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from bodydata.errors import BodydataError
from bodydata.fsutil import atomic_path, sha256_file
from bodydata.mesh import read_mesh
from bodydata.sources.base import (
    COLUMNS,
    STATUS_FAILED,
    STATUS_OK,
    TOPOLOGY_VERTICES,
    ManifestRow,
    get_adapter,
    topology_for_count,
)

_COUNT_SUFFIX = re.compile(r".*_(\d+)$")


def expected_vertex_count(topology: str) -> int | None:
    """Vertex count a topology requires (``smpl_6890`` -> 6890, ``scape_simplified_2161`` -> 2161), None if free."""
    if topology in TOPOLOGY_VERTICES:
        return TOPOLOGY_VERTICES[topology]
    m = _COUNT_SUFFIX.fullmatch(topology)
    return int(m.group(1)) if m else None


@dataclass
class ScanResult:
    """rows : every discovered mesh, validated; out : the manifest written (or None)."""

    rows: list[ManifestRow]
    out: Path | None

    @property
    def n_ok(self) -> int:
        return sum(r.status == STATUS_OK for r in self.rows)

    @property
    def n_failed(self) -> int:
        return sum(r.status == STATUS_FAILED for r in self.rows)


def validate_row(adapter, row: ManifestRow) -> ManifestRow:
    """Hash and read one mesh; fill n_vertices/n_faces/sha256 and set status (ok/failed + reason)."""
    try:
        row.sha256 = sha256_file(row.path)
    except OSError as exc:
        row.status, row.error = STATUS_FAILED, f"{row.path}: cannot read file: {exc.strerror or exc}"
        return row
    try:
        auto = row.topology == "auto"
        mesh = read_mesh(row.path, expected_vertices=None if auto else expected_vertex_count(row.topology))
        row.n_vertices, row.n_faces = len(mesh.vertices), len(mesh.faces)
        if auto:
            row.topology = topology_for_count(row.n_vertices)
        adapter.check(row, mesh.vertices, mesh.faces)
    except BodydataError as exc:
        row.status, row.error = STATUS_FAILED, " ".join(str(exc).split())
        return row
    except (OSError, MemoryError) as exc:  # a file system or resource problem, not a crash of the scan
        row.status, row.error = STATUS_FAILED, f"{row.path}: {type(exc).__name__}: {' '.join(str(exc).split())}"
        return row
    row.status, row.error = STATUS_OK, ""
    return row


def scan_source(source: str, root: str | Path, out: str | Path | None = None, progress: bool = True, **options) -> ScanResult:
    """Discover the meshes of ``source`` under ``root``, validate each, and write ``out`` (CSV) if given.

    options : adapter-specific (e.g. ``landmarks=`` for ``folder``). Raises ``SourceError`` when the
    folder does not look like the source.
    """
    adapter = get_adapter(source)
    rows = adapter.discover(Path(root), **options)
    for row in tqdm(rows, desc=f"scan {source}", unit="mesh", disable=not progress):
        validate_row(adapter, row)
    out_path = write_manifest(out, rows) if out is not None else None
    return ScanResult(rows=rows, out=out_path)


def write_manifest(path: str | Path, rows: list[ManifestRow]) -> Path:
    """Write rows as CSV (header = ``COLUMNS``), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow(row.as_record())
    return path


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest CSV. Identity columns stay strings (empty = unknown); relative ``path``,
    ``gt_path`` and ``landmarks_path`` values are resolved against the manifest's folder."""
    path = Path(path)
    text_cols = {c: str for c in COLUMNS if c not in ("n_vertices", "n_faces")}
    table = pd.read_csv(path, dtype=text_cols, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise BodydataError(f"{path}: not a bodydata manifest (missing columns: {', '.join(missing)})")
    base = path.resolve().parent
    for col in ("path", "gt_path", "landmarks_path"):
        table[col] = [str(base / v) if v and not Path(v).is_absolute() else v for v in table[col]]
    for col in ("n_vertices", "n_faces"):
        table[col] = pd.to_numeric(table[col], errors="coerce").astype("Int64")
    return table
