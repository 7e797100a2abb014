"""Built-in ``mesh-stats`` stage: counts, surface area, enclosed volume and extent of every mesh in a folder.

Cheap and dependency-free, it lets a pipeline check a folder of meshes (and exercises the orchestration on real
files). Options: ``input`` (a folder; default: the upstream step's folder), ``pattern`` (a glob below it,
default every .ply/.obj/.off recursively), ``expected_vertices`` (optional vertex count every mesh must have).
Result columns, in the files' own units: ``n_vertices``, ``n_faces``, ``area``, ``volume`` (signed; positive for
a closed mesh with outward normals), ``watertight``, ``extent_x``/``extent_y``/``extent_z``. No output files.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bodydata.mesh import read_mesh
from bodydata.mesh.io import SUPPORTED_SUFFIXES
from bodydata.pipeline.stage import Item, ItemContext, Stage, StageContext, StageError
from bodydata.pipeline.stage_options import MeshStatsOptions

__all__ = ["make_stage", "mesh_stats"]


def mesh_stats(vertices: np.ndarray, faces: np.ndarray) -> dict[str, Any]:
    """Statistics of a triangle mesh. vertices : (n, 3) float64; faces : (m, 3) int64."""
    from bodydata.mesh.topology import is_watertight

    p0, p1, p2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    area = 0.5 * float(np.linalg.norm(np.cross(p1 - p0, p2 - p0), axis=1).sum())
    # Divergence theorem: sum of signed tetrahedra (origin, triangle); exact for a closed mesh.
    volume = float(np.einsum("ij,ij->i", p0, np.cross(p1, p2)).sum() / 6.0)
    ext = vertices.max(axis=0) - vertices.min(axis=0) if len(vertices) else np.zeros(3)
    return {
        "n_vertices": int(len(vertices)),
        "n_faces": int(len(faces)),
        "area": area,
        "volume": volume,
        "watertight": bool(is_watertight(faces)),
        "extent_x": float(ext[0]),
        "extent_y": float(ext[1]),
        "extent_z": float(ext[2]),
    }


def _items(ctx: StageContext, input: str | None, pattern: str | None) -> Iterator[Item]:
    root = Path(input) if input else ctx.input_dir
    if root is None:
        raise StageError("mesh-stats: give the 'input' option (a folder of meshes) or put the stage after one")
    if not root.is_dir():
        raise StageError(f"{root}: mesh-stats input is not a folder")
    paths = sorted(root.glob(pattern)) if pattern else sorted(
        p for p in root.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES
    )
    for p in paths:
        if p.is_file():
            yield Item(key=p.relative_to(root).as_posix(), inputs=(str(p),))


def _process(item: Item, ctx: ItemContext) -> dict[str, Any]:
    mesh = read_mesh(item.inputs[0], expected_vertices=MeshStatsOptions(**ctx.options).expected_vertices,
                     allow_point_cloud=True)
    return mesh_stats(mesh.vertices, mesh.faces)


def make_stage(input: str | None = None, pattern: str | None = None, expected_vertices: int | None = None) -> Stage:
    """``mesh-stats``: vertex/face counts, area, volume, extent of every mesh in a folder (module docstring)."""
    opts = MeshStatsOptions(input=input, pattern=pattern, expected_vertices=expected_vertices)
    return Stage(
        name="mesh-stats",
        process=_process,
        items=functools.partial(_items, input=input, pattern=pattern),
        options=dataclasses.asdict(opts),
        description="per-mesh counts, area, volume, extent",
    )
