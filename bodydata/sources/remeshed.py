"""Remeshed-shape adapter (FAUST_r / SCAPE_r style): independently remeshed bodies with optional ``.vts`` maps.

Layout: mesh files (``.off``, also ``.ply``/``.obj``) anywhere under the root, e.g. ``off/tr_reg_000.off``,
and ground truth ``<stem>.vts`` either beside the mesh or in a ``corres/`` folder (``*.sym.vts``, the
left-right mirrored map, is not used). Subject/pose come from the names when they follow FAUST
(``tr_reg_XXX``: subject XXX // 10, pose XXX % 10) or SCAPE (``meshNNN``: subject 0, pose NNN).

The ``.vts`` format (as in the SGA18 BCICP data): one 1-based vertex id of *this* mesh per line; line
k of every shape of a collection is the same body point (a common set of k points, 5,000 for
FAUST_r), so shapes A and B correspond as ``A[vts_A[k]] <-> B[vts_B[k]]``. Checked on the shared
FAUST_r: every file has 5,000 lines while the meshes have 4,999..5,001 vertices, values stay within
1..n_vertices, and line k lands on the same FAUST registration vertex across shapes (up to the
sampling) -- it is not a per-vertex map to the 6,890-vertex order.

Units are ``normalized``: FAUST_r shapes were rescaled one by one upstream (height ~1.0 while the
FAUST registrations are 1.6-1.8 m), so sizes are not metric. FAUST_r is y-up.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bodydata.errors import MeshError
from bodydata.manifest.source_rows import UNITS_NORMALIZED, ManifestRow
from bodydata.sources.base import SourceError, mesh_files, register, require_dir, row_id

_FAUST = re.compile(r"tr_reg_(\d{3})")
_SCAPE = re.compile(r"mesh(\d{3})")


def read_vts(path: str | Path, n_vertices: int | None = None) -> np.ndarray:
    """Read a ``.vts`` ground-truth file.

    Returns ``(k,) int64`` 0-based vertex ids of the mesh the file belongs to. With ``n_vertices``,
    every id must lie in ``[0, n_vertices)``. Raises ``MeshError(path, reason)``.
    """
    path = Path(path)
    if not path.is_file():
        raise MeshError(path, "ground-truth .vts file does not exist")
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise MeshError(path, f"cannot read .vts: {exc}") from None
    tokens = text.split()
    if not tokens:
        raise MeshError(path, ".vts file is empty")
    try:
        ids = np.asarray([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        raise MeshError(path, ".vts holds a value that is not an integer vertex id") from None
    if ids.min() < 1:
        raise MeshError(path, f".vts ids are 1-based; found {int(ids.min())}")
    ids -= 1
    if n_vertices is not None and ids.max() >= n_vertices:
        raise MeshError(path, f".vts refers to vertex {int(ids.max()) + 1} (1-based) but the mesh has {n_vertices} vertices")
    return ids


def _find_vts(root: Path, mesh: Path) -> Path | None:
    for cand in (mesh.with_suffix(".vts"), mesh.parent.parent / "corres" / f"{mesh.stem}.vts", root / "corres" / f"{mesh.stem}.vts"):
        if cand.is_file():
            return cand
    return None


@register("remeshed")
class RemeshedAdapter:
    name = "remeshed"
    description = "Independently remeshed bodies (FAUST_r/SCAPE_r .off) with optional ground-truth .vts maps"
    layout = (
        "mesh files (.off/.ply/.obj, e.g. off/tr_reg_000.off or off/mesh000.off), each with its own connectivity, "
        "optionally with <stem>.vts beside it or in corres/"
    )

    def __init__(self) -> None:
        self._vts_len: int | None = None

    def discover(self, root: Path, **options) -> list[ManifestRow]:
        root = require_dir(root, self.name, self.layout)
        files = mesh_files(root)
        if not files:
            raise SourceError(f"{root}: no mesh files found; expected {self.layout}")
        rows = []
        for p in files:
            subject = pose = ""
            up = "+y"
            if m := _FAUST.fullmatch(p.stem):
                k = int(m.group(1))
                subject, pose = str(k // 10), str(k % 10)
            elif m := _SCAPE.fullmatch(p.stem):
                subject, pose = "0", str(int(m.group(1)))
                up = ""  # SCAPE_r's orientation was not checked here: unknown
            vts = _find_vts(root, p)
            rows.append(ManifestRow(id=row_id(self.name, root, p), source=self.name, kind="remeshed", path=str(p),
                                    topology="own", subject=subject, pose=pose, up_axis=up, units=UNITS_NORMALIZED,
                                    gt_path=str(vts) if vts else "", gt_kind="vts" if vts else ""))
        return rows

    def check(self, row: ManifestRow, vertices: np.ndarray, faces: np.ndarray) -> None:
        if not row.gt_path:
            return
        ids = read_vts(row.gt_path, n_vertices=len(vertices))
        # Line k means the same body point in every file, so all maps of one scan have one length.
        if self._vts_len is None:
            self._vts_len = len(ids)
        elif len(ids) != self._vts_len:
            raise MeshError(row.gt_path, f".vts has {len(ids)} lines, other shapes of this folder have {self._vts_len}")
