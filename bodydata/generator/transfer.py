"""Ground truth for pose transfer: anny's body of identity A in the exact pose of a posed body of identity B.

A generator output folder records, for each posed mesh, its identity's phenotype and the anatomical joint angles
(``truth/<id>/<stem>.json``, :mod:`bodydata.generator.layout`); posing A's phenotype with B's angles through the same
rig (:meth:`~bodydata.generator.synth.AnnySynth.forward`) gives the body a perfect pose transfer would produce.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from bodydata.generator import layout
from bodydata.generator.synth import AnnySynth, Phenotype, SynthError

__all__ = ["truth_of_mesh", "phenotype_of", "PoseTransferTruth"]


def truth_of_mesh(mesh_path: str | os.PathLike) -> dict | None:
    """The truth record of a posed mesh written by the generator (``DIR/meshes/<id>/<stem>.ply``), with ``dir`` (the
    generator folder) added; None when the mesh does not come from a generator folder."""
    p = Path(mesh_path)
    if len(p.parts) < 3 or p.parent.parent.name != layout.MESHES:
        return None
    root = p.parent.parent.parent
    path = root / layout.truth_path(p.parent.name, p.stem)
    if not (path.is_file() and (root / layout.SYNTH_JSON).is_file()):
        return None
    rec = json.loads(path.read_text(encoding="utf-8"))
    rec["dir"] = str(root)
    return rec


def phenotype_of(record: dict) -> Phenotype:
    """The :class:`Phenotype` of a truth record."""
    return Phenotype(sex=record["sex"], age_years=float(record["age_years"]),
                     **{k: float(v) for k, v in record["phenotype"].items()})


class PoseTransferTruth:
    """Poses phenotypes with other bodies' angles; builds the anny model of ``topology`` once (CPU by default)."""

    def __init__(self, topology: str, device: str = "cpu"):
        self.synth = AnnySynth(topology=topology, check_intersections=False, device=device)

    def __call__(self, shape_record: dict, pose_record: dict) -> np.ndarray:
        """(n, 3) float64 metres: the identity of ``shape_record`` in the pose of ``pose_record`` (truth records)."""
        from bodydata.generator.poses import dof_keys

        angles = pose_record["angles_deg"]
        try:
            vec = np.array([[float(angles[k]) for k in dof_keys()]])
        except KeyError as exc:
            raise SynthError(f"{pose_record.get('mesh')}: truth record lacks joint angle {exc}") from None
        return self.synth.forward(phenotype_of(shape_record), vec)["vertices"][0]
