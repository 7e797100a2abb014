"""The source-adapter protocol, the registry of adapters by name, and helpers the adapters share.

A source adapter looks at a dataset folder and lists its meshes as ``ManifestRow``s
(:mod:`bodydata.manifest.source_rows`: identity, file, topology, units, up axis). ``bodydata.sources.scan`` then hashes and validates every file
and writes the rows as a CSV manifest; the columns are documented in ``manifests/README.md``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from bodydata.errors import BodydataError
from bodydata.manifest.source_rows import ManifestRow
from bodydata.naming import natural_key

# Vertex counts of the named topologies (a mesh of that topology must have exactly this many).
# "own" = every mesh has its own connectivity (scans, independently remeshed shapes): no count check.
TOPOLOGY_VERTICES: dict[str, int | None] = {
    "smpl_6890": 6890,
    "scape_12500": 12500,
    "anny_notoes": 12272,
    "anny_notoes_collapse10pc": 1229,
    "anny_default": 13718,
    "own": None,
}

MESH_SUFFIXES = (".ply", ".obj", ".off")


class SourceError(BodydataError, ValueError):
    """A folder does not look like the requested source (the message says what was expected)."""


class SourceAdapter(Protocol):
    """What every adapter provides.

    name : registry key (``--source NAME``).
    description : one line for ``bodydata sources list``.
    layout : what a folder of this source looks like (quoted in the error for a wrong folder).
    discover(root, **options) -> rows with status ``pending``; raises ``SourceError`` when the folder
        does not look like the source.
    check(row, vertices, faces) -> None; extra per-mesh checks after the mesh was read (e.g. a
        ground-truth map's length); raises ``BodydataError`` with a one-line reason.
    """

    name: str
    description: str
    layout: str

    def discover(self, root: Path, **options) -> list[ManifestRow]: ...

    def check(self, row: ManifestRow, vertices: np.ndarray, faces: np.ndarray) -> None: ...


_REGISTRY: dict[str, Callable[[], SourceAdapter]] = {}


def register(name: str) -> Callable:
    """Class decorator: make an adapter class available as ``--source name``."""

    def deco(cls):
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    # Import for the side effect of registration; cheap modules (no torch/anny at import time).
    from bodydata.sources import anny, dfaust, faust, folder, remeshed, scape  # noqa: F401


def adapter_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_adapter(name: str) -> SourceAdapter:
    _load_builtin()
    if name not in _REGISTRY:
        raise SourceError(f"unknown source {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]()


# ----------------------------------------------------------------------------------------------
# helpers shared by the adapters


def require_dir(root: str | Path, source: str, layout: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise SourceError(f"{root}: not a folder; a {source} root is expected to hold {layout}")
    return root.resolve()


def mesh_files(root: Path, pattern: re.Pattern | None = None, suffixes=MESH_SUFFIXES) -> list[Path]:
    """Mesh files under ``root`` (recursive, hidden files skipped) whose stem matches ``pattern``, sorted."""
    out = []
    for p in root.rglob("*"):
        if p.name.startswith(".") or p.suffix.lower() not in suffixes or not p.is_file():
            continue
        if any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        if pattern is not None and not pattern.fullmatch(p.stem):
            continue
        out.append(p)
    return sorted(out, key=lambda q: natural_key(str(q.relative_to(root))))


def row_id(source: str, root: Path, path: Path) -> str:
    """``<source>/<path relative to root, without suffix>`` (posix separators): unique within a scan."""
    rel = path.relative_to(root).with_suffix("")
    return f"{source}/{rel.as_posix()}"


def topology_for_count(n: int) -> str:
    """Named topology with ``n`` vertices, or ``"own"``."""
    for name, count in TOPOLOGY_VERTICES.items():
        if count == n:
            return name
    return "own"
