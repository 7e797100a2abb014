"""SCAPE adapter: one subject's poses, in the original 12,500-vertex order or one simplified shared connectivity.

Files ``meshNNN.(ply|off|obj)`` give pose NNN (SCAPE's own numbering, 0-based). Folders of a
simplified version name the poses by number only (``1.obj`` .. ``71.obj``, as in convMesh); their
pose is that number, which is that collection's own order, not SCAPE's meshNNN index (only
1.obj = mesh000 was verified). The topology follows from the vertex count of the first mesh:
12,500 -> ``scape_12500``; any other count n -> ``scape_simplified_<n>``, and every mesh must then
have n vertices and the first mesh's faces (shared connectivity).

SCAPE coordinates (checked on mesh000 against FAUST with the 78 DHNN correspondences, proper
rotation): up = +x, the subject faces -y, the subject's left is -z; metres.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bodydata.errors import MeshError
from bodydata.mesh import read_mesh
from bodydata.manifest.source_rows import ManifestRow
from bodydata.sources.base import SourceError, mesh_files, register, require_dir, row_id

_MESH = re.compile(r"mesh(\d{3})")
_NUM = re.compile(r"(\d+)")
SCAPE_UP_AXIS = "+x"


@register("scape")
class ScapeAdapter:
    name = "scape"
    description = "SCAPE: one subject, poses meshNNN (.ply/.off), 12,500-vertex order or one simplified shared connectivity"
    layout = (
        "SCAPE poses named meshNNN.ply/.off/.obj (original 12,500-vertex order) or numbered N.obj/.off/.ply "
        "sharing one simplified connectivity"
    )

    def __init__(self) -> None:
        self._faces: np.ndarray | None = None

    def discover(self, root: Path, **options) -> list[ManifestRow]:
        root = require_dir(root, self.name, self.layout)
        files = mesh_files(root, _MESH)
        numbered = False
        if not files:
            files = mesh_files(root, _NUM)
            numbered = True
        if not files:
            raise SourceError(f"{root}: no SCAPE meshes found; expected {self.layout}")
        topology = self._topology_from(files)
        rows = []
        for p in files:
            pose = str(int(p.stem)) if numbered else str(int(_MESH.fullmatch(p.stem).group(1)))
            rows.append(ManifestRow(id=row_id(self.name, root, p), source=self.name,
                                    kind="registration" if not numbered else "simplified", path=str(p),
                                    topology=topology, subject="0", pose=pose, up_axis=SCAPE_UP_AXIS))
        return rows

    def _topology_from(self, files: list[Path]) -> str:
        # The first readable mesh decides; an unreadable one becomes a failed row later.
        for p in files:
            try:
                mesh = read_mesh(p)
            except MeshError:
                continue
            n = len(mesh.vertices)
            if n == 12500:
                return "scape_12500"
            self._faces = mesh.faces
            return f"scape_simplified_{n}"
        raise SourceError(f"{files[0].parent}: none of the {len(files)} SCAPE mesh files could be read")

    def check(self, row: ManifestRow, vertices: np.ndarray, faces: np.ndarray) -> None:
        if row.topology.startswith("scape_simplified_"):
            n = int(row.topology.rsplit("_", 1)[1])
            if len(vertices) != n:
                raise MeshError(row.path, f"has {len(vertices)} vertices, the simplified SCAPE set has {n}")
            if self._faces is not None and not np.array_equal(faces, self._faces):
                raise MeshError(row.path, "faces differ from the first mesh of this simplified SCAPE set (not a shared connectivity)")
