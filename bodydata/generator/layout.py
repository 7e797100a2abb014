"""File layout of a generator output folder (``bodydata synth anny --out DIR``): every name in it, written and read here.

The generator writes with these helpers and the ``anny`` source adapter reads with them, so the two cannot
drift apart. Paths are relative to ``DIR`` (or to ``DIR/<topo>`` for another connectivity's meshes).
"""
from __future__ import annotations

import re

__all__ = [
    "IDENTITIES_CSV", "LAYOUT_VERSION", "MESHES", "NEUTRAL", "SYNTH_JSON", "TRUTH",
    "identity_index", "identity_name", "map_path", "mesh_path", "neutral_path", "pose_index", "pose_stem", "truth_path",
]

LAYOUT_VERSION = 1
SYNTH_JSON = "synth.json"
IDENTITIES_CSV = "identities.csv"
MESHES = "meshes"
NEUTRAL = "neutral"
TRUTH = "truth"

_IDENTITY = re.compile(r"anny(\d+)")
_STEM = re.compile(r"(.+)_(\d+)")


def identity_name(index: int) -> str:
    """``anny00007`` for identity 7."""
    return f"anny{index:05d}"


def identity_index(name: str) -> int | None:
    """7 for ``anny00007``; None for a name the generator does not write."""
    m = _IDENTITY.fullmatch(name)
    return int(m.group(1)) if m else None


def pose_stem(pose_name: str, index: int) -> str:
    """``<pose_name>_<jjj>``: the file stem of pose ``index`` of an identity."""
    return f"{pose_name}_{index:03d}"


def pose_index(stem: str) -> int | None:
    """The pose index ``jjj`` of a ``<pose_name>_<jjj>`` stem; None for another stem."""
    m = _STEM.fullmatch(stem)
    return int(m.group(2)) if m else None


def mesh_path(identity: str, stem: str) -> str:
    """``meshes/<identity>/<stem>.ply``: a posed body."""
    return f"{MESHES}/{identity}/{stem}.ply"


def neutral_path(identity: str) -> str:
    """``neutral/<identity>.ply``: the identity's true neutral body."""
    return f"{NEUTRAL}/{identity}.ply"


def truth_path(identity: str, stem: str) -> str:
    """``truth/<identity>/<stem>.json``: the ground truth of one posed body (main folder only)."""
    return f"{TRUTH}/{identity}/{stem}.json"


def map_path(topology: str) -> str:
    """``<topology>/map.npz``: the exact map of a derived connectivity onto the main one."""
    return f"{topology}/map.npz"
