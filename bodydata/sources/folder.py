"""Generic adapter: any folder of meshes, plus a landmark CSV that names anatomical points on them.

Every mesh file under the root (.ply/.obj/.off, recursive) becomes a row; its topology is decided
after reading it (a known vertex count such as 6,890 or 12,500 names the topology, anything else is
``own``). A file without faces (a point cloud, e.g. a scan of ``bodydata virtual-scan``) is a row too, of
topology ``own``. The landmark CSV is ``--landmarks FILE`` or ``landmarks.csv`` in the root; accepted forms:

* ``name,vertex_id``              one set for every mesh (the meshes share a vertex order);
* ``mesh,name,vertex_id``         per mesh (``mesh`` = file stem or path relative to the root);
* ``mesh,name,x,y,z``             per mesh, landmark coordinates in the mesh's units.

Without a CSV, a mesh of a named topology gets the packaged landmark set of that topology
(``bodydata/templates/data/landmarks_<topology>.csv``) when one exists; otherwise no landmarks.

Identity: ``subject_regex`` (``--subject-regex``) is a regular expression with a named group ``subject`` (and
optionally ``pose``) matched against each mesh's path relative to the root, without its suffix (``s3/pose_07``);
a mesh it does not match is a failed row. Without it rows have no subject (a dataset build cannot pair them).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from bodydata.errors import MeshError
from bodydata.manifest.source_rows import ManifestRow
from bodydata.sources.base import SourceError, mesh_files, register, require_dir, row_id

PACKAGED_LANDMARKS = Path(__file__).resolve().parents[1] / "templates" / "data"


def packaged_landmarks(topology: str) -> Path | None:
    path = PACKAGED_LANDMARKS / f"landmarks_{topology}.csv"
    return path if path.is_file() else None


def read_landmark_table(path: str | Path) -> pd.DataFrame:
    """Read and check a landmark CSV (one of the three forms above). Raises ``SourceError``."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"mesh": str, "name": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise SourceError(f"{path}: cannot read landmark CSV: {' '.join(str(exc).split())}") from None
    cols = set(table.columns)
    if "name" not in cols or not ({"vertex_id"} <= cols or {"x", "y", "z"} <= cols):
        raise SourceError(
            f"{path}: landmark CSV needs columns name,vertex_id or mesh,name,vertex_id or mesh,name,x,y,z; found {','.join(table.columns)}"
        )
    if "vertex_id" not in cols and "mesh" not in cols:
        raise SourceError(f"{path}: landmark coordinates (x,y,z) need a 'mesh' column saying which mesh they belong to")
    if table["name"].isna().any():
        raise SourceError(f"{path}: a landmark row has no name")
    if "vertex_id" in cols:
        vid = pd.to_numeric(table["vertex_id"], errors="coerce")
        if vid.isna().any() or (vid < 0).any() or (vid != vid.round()).any():
            raise SourceError(f"{path}: vertex_id must hold non-negative integers")
    else:
        xyz = table[["x", "y", "z"]].apply(pd.to_numeric, errors="coerce")
        if not np.isfinite(xyz.to_numpy(dtype=float)).all():
            raise SourceError(f"{path}: landmark coordinates x,y,z must be finite numbers")
    key = ["mesh", "name"] if "mesh" in cols else ["name"]
    if table.duplicated(key).any():
        raise SourceError(f"{path}: landmark names repeat ({', '.join(key)} must be unique)")
    return table


def subject_pattern(text: str) -> re.Pattern:
    """Compile ``subject_regex``; it must have a named group ``subject``. Raises ``SourceError``."""
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise SourceError(f"subject pattern {text!r} is not a regular expression ({exc})") from None
    if "subject" not in pattern.groupindex:
        raise SourceError(f"subject pattern {text!r} needs a named group (?P<subject>...)")
    return pattern


@register("folder")
class FolderAdapter:
    name = "folder"
    description = "Any folder of meshes (.ply/.obj/.off) plus a landmark CSV (--landmarks FILE or landmarks.csv in the folder)"
    layout = "mesh files (.ply/.obj/.off) at any depth, optionally a landmark CSV (landmarks.csv in the folder or --landmarks)"
    accepts_point_clouds = True

    def __init__(self) -> None:
        self._table: pd.DataFrame | None = None
        self._root: Path | None = None
        self._subject_re: re.Pattern | None = None

    def discover(self, root: Path, landmarks: str | Path | None = None, units: str | None = None,
                 up_axis: str | None = None, subject_regex: str | None = None, **options) -> list[ManifestRow]:
        root = require_dir(root, self.name, self.layout)
        self._root = root
        self._subject_re = subject_pattern(subject_regex) if subject_regex else None
        files = mesh_files(root)
        if not files:
            raise SourceError(f"{root}: no mesh files found; expected {self.layout}")
        lm_path = Path(landmarks).resolve() if landmarks else (root / "landmarks.csv")
        if landmarks and not lm_path.is_file():
            raise SourceError(f"{lm_path}: landmark CSV does not exist")
        if lm_path.is_file():
            self._table = read_landmark_table(lm_path)
        rows = []
        for p in files:
            ident = self._identity(p)
            rows.append(ManifestRow(id=row_id(self.name, root, p), source=self.name, kind="mesh", path=str(p),
                                    topology="auto", subject=ident.get("subject") or "", pose=ident.get("pose") or "",
                                    units=units or "m", up_axis=up_axis or "",
                                    landmarks_path=str(lm_path) if self._table is not None else ""))
        return rows

    def _identity(self, path: Path) -> dict[str, str]:
        """The named groups of ``subject_regex`` on ``path`` (relative to the root, no suffix); {} if no match."""
        if self._subject_re is None:
            return {}
        m = self._subject_re.fullmatch(path.relative_to(self._root).with_suffix("").as_posix())
        return m.groupdict() if m else {}

    def check(self, row: ManifestRow, vertices: np.ndarray, faces: np.ndarray) -> None:
        if self._subject_re is not None and not row.subject:
            rel = Path(row.path).relative_to(self._root).with_suffix("").as_posix()
            raise MeshError(row.path, f"{rel!r} does not match the subject pattern {self._subject_re.pattern!r}")
        if self._table is None:
            packaged = packaged_landmarks(row.topology)
            row.landmarks_path = str(packaged) if packaged else ""
            return
        table = self._table
        if "mesh" in table.columns:
            rel = Path(row.path).relative_to(self._root)
            mine = table[(table["mesh"] == rel.stem) | (table["mesh"] == rel.as_posix()) | (table["mesh"] == rel.with_suffix("").as_posix())]
            if mine.empty:
                raise MeshError(row.path, f"landmark CSV {row.landmarks_path} has no rows for this mesh")
        else:
            mine = table
        if "vertex_id" in mine.columns:
            top = int(mine["vertex_id"].max())
            if top >= len(vertices):
                raise MeshError(row.path, f"landmark vertex_id {top} is out of range for {len(vertices)} vertices")
