"""Named landmarks (name -> vertex id) of each topology: the shared vocabulary, the shipped CSVs, read/write/validate.

CSV format: a header ``name,vertex_id`` then one row per landmark (0-based vertex ids), sorted as
in :data:`LANDMARK_NAMES`. ``L``/``R`` are the subject's own left/right. Shipped files live in
``bodydata/templates/data/landmarks_<topology>.csv`` for the topologies of :data:`TOPOLOGIES`.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from bodydata.errors import TemplateError
from bodydata.fsutil import atomic_write_text

LANDMARK_NAMES: tuple[str, ...] = (
    "head_top", "nose_tip", "chin", "ear_L", "ear_R", "c7", "jugular_notch",
    "shoulder_L", "shoulder_R", "elbow_L", "elbow_R", "wrist_L", "wrist_R",
    "middle_fingertip_L", "middle_fingertip_R", "navel", "crotch", "hip_L", "hip_R",
    "knee_L", "knee_R", "ankle_L", "ankle_R", "heel_L", "heel_R", "big_toe_L", "big_toe_R",
)  # fmt: skip

#: Topology -> vertex count of the meshes its landmark file indexes.
TOPOLOGIES: dict[str, int] = {
    "anny_notoes": 12272,
    "anny_notoes_collapse10pc": 1229,
    "smpl_6890": 6890,
    "scape_12500": 12500,
}

DATA_DIR = Path(__file__).resolve().parent / "data"


def landmarks_path(topology: str) -> Path:
    """Path of the shipped CSV of ``topology`` (it may not exist yet)."""
    if topology not in TOPOLOGIES:
        raise TemplateError(f"unknown landmark topology {topology!r} (known: {', '.join(TOPOLOGIES)})")
    return DATA_DIR / f"landmarks_{topology}.csv"


def read_landmarks_csv(path: str | os.PathLike, n_vertices: int | None = None) -> dict[str, int]:
    """Read a ``name,vertex_id`` CSV into an ordered dict; validate ids against ``n_vertices`` if given."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"{path}: landmark file is missing") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip() for c in rows[0]] != ["name", "vertex_id"]:
        raise TemplateError(f"{path}: the first line must be the header 'name,vertex_id'")
    landmarks: dict[str, int] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise TemplateError(f"{path}: line {lineno} has {len(row)} fields, expected 2 (name,vertex_id)")
        name, value = row[0].strip(), row[1].strip()
        try:
            vid = int(value)
        except ValueError:
            raise TemplateError(f"{path}: line {lineno}: vertex id {value!r} is not an integer") from None
        if name in landmarks:
            raise TemplateError(f"{path}: line {lineno}: landmark {name!r} appears twice")
        landmarks[name] = vid
    validate_landmarks(landmarks, n_vertices, path=path)
    return landmarks


def write_landmarks_csv(path: str | os.PathLike, landmarks: dict[str, int]) -> Path:
    """Write ``landmarks`` as a ``name,vertex_id`` CSV (vocabulary order first, others after), atomically."""
    order = [n for n in LANDMARK_NAMES if n in landmarks] + sorted(n for n in landmarks if n not in LANDMARK_NAMES)
    text = "name,vertex_id\n" + "".join(f"{n},{int(landmarks[n])}\n" for n in order)
    atomic_write_text(path, text)
    return Path(path)


def validate_landmarks(landmarks: dict[str, int], n_vertices: int | None = None, path: str | os.PathLike | None = None) -> None:
    """Raise TemplateError (one line) for an empty/odd name or a vertex id outside 0..n_vertices-1."""
    where = f"{path}: " if path is not None else ""
    for name, vid in landmarks.items():
        if not isinstance(name, str) or not name or "," in name or name != name.strip():
            raise TemplateError(f"{where}landmark name {name!r} is empty or contains a comma/whitespace padding")
        if isinstance(vid, bool) or not isinstance(vid, int) and not hasattr(vid, "__index__"):
            raise TemplateError(f"{where}landmark {name!r} has a non-integer vertex id {vid!r}")
        if int(vid) < 0 or (n_vertices is not None and int(vid) >= n_vertices):
            bound = f"0..{n_vertices - 1}" if n_vertices is not None else ">= 0"
            raise TemplateError(f"{where}landmark {name!r} has vertex id {int(vid)}, outside {bound}")


def load_landmarks(topology: str) -> dict[str, int]:
    """The shipped landmarks of ``topology`` (a key of :data:`TOPOLOGIES`) as ``{name: vertex_id}``.

    Raises TemplateError if the topology is unknown or its CSV is not shipped.
    """
    return read_landmarks_csv(landmarks_path(topology), n_vertices=TOPOLOGIES[topology])


def missing_names(landmarks: dict[str, int]) -> list[str]:
    """Names of the shared vocabulary :data:`LANDMARK_NAMES` absent from ``landmarks``."""
    return [n for n in LANDMARK_NAMES if n not in landmarks]
