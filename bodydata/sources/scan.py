"""Scan a dataset folder with a source adapter: hash and validate every mesh, write the manifest CSV.

A mesh that cannot be read, or fails its topology's checks, becomes a row with ``status=failed`` and a
one-line ``error``; the scan goes on. Only a folder that does not look like the source at all
raises (``SourceError``). The manifest is written atomically by
:func:`bodydata.manifest.source_rows.write_source_rows`; its columns are documented in ``manifests/README.md``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bodydata.errors import BodydataError
from bodydata.fsutil import sha256_file
from bodydata.manifest.source_rows import ManifestRow, write_source_rows
from bodydata.manifest.status import STATUS_DONE, STATUS_FAILED
from bodydata.mesh import read_mesh
from bodydata.sources.base import TOPOLOGY_VERTICES, get_adapter, topology_for_count

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
        return sum(r.status == STATUS_DONE for r in self.rows)

    @property
    def n_failed(self) -> int:
        return sum(r.status == STATUS_FAILED for r in self.rows)


def validate_row(adapter, row: ManifestRow) -> ManifestRow:
    """Hash and read one mesh; fill n_vertices/n_faces/sha256 and set status (done/failed + reason)."""
    try:
        row.sha256 = sha256_file(row.path)
    except OSError as exc:
        row.status, row.error = STATUS_FAILED, f"{row.path}: cannot read file: {exc.strerror or exc}"
        return row
    try:
        auto = row.topology == "auto"
        mesh = read_mesh(row.path, expected_vertices=None if auto else expected_vertex_count(row.topology),
                         allow_point_cloud=getattr(adapter, "accepts_point_clouds", False))
        row.n_vertices, row.n_faces = len(mesh.vertices), len(mesh.faces)
        if auto:
            # a point cloud's count names no vertex order, even when it happens to be 6,890
            row.topology = "own" if mesh.is_point_cloud else topology_for_count(row.n_vertices)
        adapter.check(row, mesh.vertices, mesh.faces)
    except BodydataError as exc:
        row.status, row.error = STATUS_FAILED, " ".join(str(exc).split())
        return row
    except (OSError, MemoryError) as exc:  # a file system or resource problem, not a crash of the scan
        row.status, row.error = STATUS_FAILED, f"{row.path}: {type(exc).__name__}: {' '.join(str(exc).split())}"
        return row
    row.status, row.error = STATUS_DONE, ""
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
    out_path = write_source_rows(out, rows) if out is not None else None
    return ScanResult(rows=rows, out=out_path)
