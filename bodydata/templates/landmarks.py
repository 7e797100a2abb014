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

#: Optional landmarks beyond the shared vocabulary, shipped where a rule places them (SMPL and SCAPE orders; not
#: anny): the thumb tips fix a hand's turn about the forearm, which the wrist and middle fingertip (both on that
#: axis) leave free. A conversion uses the landmarks its template and target share, so a topology without them
#: simply does without.
OPTIONAL_LANDMARK_NAMES: tuple[str, ...] = ("thumb_tip_L", "thumb_tip_R")

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


def read_landmark_pairs(path: str | os.PathLike, n_template: int | None = None,
                        n_source: int | None = None) -> tuple[dict[str, int], dict[str, int]]:
    """Sparse correspondences between the template and a source topology, as two landmark sets with shared names.

    The file has one pair per line, ``template_vertex source_vertex`` separated by whitespace or a comma (the
    format of the paper's ``bodyrep_corres.txt``: 79 SCAPE-order <-> SMPL vertex pairs); blank lines and ``#``
    comments are skipped, and a first line that is not two integers is taken for a header. Line ``k`` of the pairs
    becomes landmark ``pair_<k>`` (zero-padded) on both sides. Ids are checked against ``n_template`` /
    ``n_source`` when given. Returns ``(template landmarks, source landmarks)``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"{path}: landmark pair file is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{path}: landmark pair file cannot be read ({exc})") from None
    pairs: list[tuple[int, int]] = []
    first = True
    for lineno, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0].replace(",", " ").split()
        if not body:
            continue
        try:
            if len(body) != 2:
                raise ValueError
            pairs.append((int(body[0]), int(body[1])))
        except ValueError:
            if not first:
                raise TemplateError(f"{path}: line {lineno} is not two integer vertex ids "
                                    f"'template_vertex source_vertex': {line.strip()!r}") from None
        first = False
    if not pairs:
        raise TemplateError(f"{path}: no landmark pairs (expected lines 'template_vertex source_vertex')")
    width = len(str(len(pairs) - 1))
    names = [f"pair_{k:0{width}d}" for k in range(len(pairs))]
    tpl = dict(zip(names, (a for a, _ in pairs)))
    src = dict(zip(names, (b for _, b in pairs)))
    validate_landmarks(tpl, n_template, path=f"{path} (template column)")
    validate_landmarks(src, n_source, path=f"{path} (source column)")
    return tpl, src


def load_landmark_pairs(path: str | os.PathLike, topology: str,
                        n_template: int | None = None) -> tuple[dict[str, int], dict[str, int]]:
    """:func:`read_landmark_pairs` with the source column checked against ``topology`` (a key of :data:`TOPOLOGIES`)."""
    if topology not in TOPOLOGIES:
        raise TemplateError(f"unknown pair topology {topology!r} (known: {', '.join(TOPOLOGIES)})")
    return read_landmark_pairs(path, n_template=n_template, n_source=TOPOLOGIES[topology])


def add_pair_landmarks(landmarks: dict[str, int] | None, n_vertices: int, pair_source: dict[str, int],
                       topology: str) -> dict[str, int] | None:
    """A source mesh's landmarks plus the pair file's source side when the mesh has ``topology``'s vertex count
    (the pairs index that topology; any other mesh keeps its own landmarks)."""
    if n_vertices != TOPOLOGIES[topology]:
        return landmarks
    return {**(landmarks or {}), **pair_source}


def write_landmarks_csv(path: str | os.PathLike, landmarks: dict[str, int]) -> Path:
    """Write ``landmarks`` as a ``name,vertex_id`` CSV (vocabulary order first, others after), atomically."""
    known = LANDMARK_NAMES + OPTIONAL_LANDMARK_NAMES
    order = [n for n in known if n in landmarks] + sorted(n for n in landmarks if n not in known)
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
