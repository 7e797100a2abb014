"""Dynamic FAUST and Dyna adapters: SMPL-order (6,890-vertex) sequences, subject/sequence/frame from the path.

Accepted layouts, per mesh file (``.obj`` or ``.ply``), tried in this order:

* ``<subject>/<sequence>/<frame>.obj``           e.g. ``50002/chicken_wings/00199.obj``
* ``<subject>_<sequence>_<frame>.obj``           e.g. ``50002_chicken_wings_00199.obj``
* ``<subject>/<sequence>_<frame>.obj``           (subject folder of 5 digits)
* ``<sequence>_<frame>.obj``                     e.g. ``chicken_wings_199.obj`` (subject unknown: empty)

Subjects are the datasets' 5-digit ids (50002, 50004, ...). Frames are kept as integers (leading
zeros dropped). Coordinates as exported from the registrations: y-up, metres.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bodydata.manifest.source_rows import ManifestRow
from bodydata.sources.base import SourceError, mesh_files, register, require_dir, row_id

_SUBJECT = re.compile(r"\d{5}")
_FRAME = re.compile(r"\d+")
_SUBJ_SEQ_FRAME = re.compile(r"(\d{5})_([A-Za-z][A-Za-z0-9_]*?)_(\d+)")
_SEQ_FRAME = re.compile(r"([A-Za-z][A-Za-z0-9_]*?)_(\d+)")
# Stems of other datasets' files that would otherwise parse as <sequence>_<frame>.
_NOT_SEQUENCES = {"tr_reg", "tr_scan", "test_scan", "test_reg", "mesh"}


def parse_sequence_path(root: Path, path: Path) -> tuple[str, str, str] | None:
    """(subject, sequence, frame) of a sequence mesh file, or None if the path fits no layout."""
    rel = path.relative_to(root)
    parts = rel.parts
    stem = path.stem
    if len(parts) >= 3 and _SUBJECT.fullmatch(parts[-3]) and _FRAME.fullmatch(stem):
        return parts[-3], parts[-2], str(int(stem))
    m = _SUBJ_SEQ_FRAME.fullmatch(stem)
    if m:
        return m.group(1), m.group(2), str(int(m.group(3)))
    m = _SEQ_FRAME.fullmatch(stem)
    if m and m.group(1) not in _NOT_SEQUENCES:
        subject = parts[-2] if len(parts) >= 2 and _SUBJECT.fullmatch(parts[-2]) else ""
        return subject, m.group(1), str(int(m.group(2)))
    return None


class _SequenceAdapter:
    name = "dfaust"
    description = ""
    layout = (
        "SMPL-order meshes (.obj/.ply, 6,890 vertices) as <subject>/<sequence>/<frame>.obj, "
        "<subject>_<sequence>_<frame>.obj, <subject>/<sequence>_<frame>.obj or <sequence>_<frame>.obj"
    )

    def discover(self, root: Path, **options) -> list[ManifestRow]:
        root = require_dir(root, self.name, self.layout)
        rows = []
        for p in mesh_files(root, None, (".obj", ".ply")):
            parsed = parse_sequence_path(root, p)
            if parsed is None:
                continue
            subject, sequence, frame = parsed
            rows.append(ManifestRow(id=row_id(self.name, root, p), source=self.name, kind="registration", path=str(p),
                                    topology="smpl_6890", subject=subject, sequence=sequence, frame=frame, up_axis="+y"))
        if not rows:
            raise SourceError(f"{root}: no {self.name} sequence meshes found; expected {self.layout}")
        return rows

    def check(self, row: ManifestRow, vertices: np.ndarray, faces: np.ndarray) -> None:
        return None


@register("dfaust")
class DfaustAdapter(_SequenceAdapter):
    name = "dfaust"
    description = "Dynamic FAUST registrations exported per frame (SMPL 6,890 order); subject/sequence/frame from the path"


@register("dyna")
class DynaAdapter(_SequenceAdapter):
    name = "dyna"
    description = "Dyna registrations exported per frame (SMPL 6,890 order); subject/sequence/frame from the path"
