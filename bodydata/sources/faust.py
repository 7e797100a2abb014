"""FAUST adapter: registrations ``tr_reg_XXX.ply`` (SMPL 6,890-vertex order) and raw scans when present.

Subject and pose of a training file come from its number: subject = XXX // 10, pose = XXX % 10
(FAUST's 10 subjects x 10 poses). Test scans ``test_scan_XXX`` carry no subject/pose labels.
FAUST is y-up, in metres; the subject faces +z with its left side at +x.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bodydata.manifest.source_rows import ManifestRow
from bodydata.sources.base import SourceError, mesh_files, register, require_dir, row_id

#: FAUST's training set: 10 subjects x 10 poses, file number = 10 * subject + pose
POSES_PER_SUBJECT = 10

_REG = re.compile(r"tr_reg_(\d{3})")
_TR_SCAN = re.compile(r"tr_scan_(\d{3})")
_TEST_SCAN = re.compile(r"test_scan_(\d{3})")


def subject_pose(number: int) -> tuple[int, int]:
    """(subject, pose) of FAUST training file number ``number`` (``tr_reg_XXX`` / ``tr_scan_XXX``)."""
    return divmod(int(number), POSES_PER_SUBJECT)


@register("faust")
class FaustAdapter:
    name = "faust"
    description = "MPI-FAUST: registrations tr_reg_XXX.ply (SMPL 6,890 order) + scans tr_scan_/test_scan_XXX.ply if present"
    layout = (
        "files tr_reg_XXX.ply (any depth, e.g. training/registrations/) and optionally tr_scan_XXX.ply / "
        "test_scan_XXX.ply; XXX = 3 digits, subject = XXX // 10, pose = XXX % 10"
    )

    def discover(self, root: Path, scans: bool = True, **options) -> list[ManifestRow]:
        root = require_dir(root, self.name, self.layout)
        ply = (".ply",)
        regs = mesh_files(root, _REG, ply)
        tr_scans = mesh_files(root, _TR_SCAN, ply) if scans else []
        te_scans = mesh_files(root, _TEST_SCAN, ply) if scans else []
        if not regs and not tr_scans and not te_scans:
            raise SourceError(f"{root}: no FAUST files found; expected {self.layout}")
        rows = []
        for p in regs:
            subject, pose = subject_pose(int(_REG.fullmatch(p.stem).group(1)))
            rows.append(ManifestRow(id=row_id(self.name, root, p), source=self.name, kind="registration", path=str(p),
                                    topology="smpl_6890", subject=str(subject), pose=str(pose), up_axis="+y"))
        for p in tr_scans:
            subject, pose = subject_pose(int(_TR_SCAN.fullmatch(p.stem).group(1)))
            rows.append(ManifestRow(id=row_id(self.name, root, p), source=self.name, kind="scan", path=str(p),
                                    topology="own", subject=str(subject), pose=str(pose), up_axis="+y"))
        for p in te_scans:
            rows.append(ManifestRow(id=row_id(self.name, root, p), source=self.name, kind="scan", path=str(p),
                                    topology="own", up_axis="+y"))
        return rows

    def check(self, row: ManifestRow, vertices: np.ndarray, faces: np.ndarray) -> None:
        return None
