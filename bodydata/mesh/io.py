"""Reading and writing triangle meshes: PLY (ASCII and binary), OBJ, OFF.

Vertex order is preserved exactly (correspondence across a dataset lives in the order), so the
parsers are our own rather than a general loader that may merge or split vertices.

Arrays everywhere: ``vertices : (n, 3) float64``, ``faces : (m, 3) int64`` (0-based),
``colors : (n, 3) uint8`` (optional, vertex colours).

Files from scanners and MeshLab are read as they come: PLY list properties other than the faces'
corners (per-face texture coordinates, float lists) are parsed by their declared type and skipped,
binary PLY faces with extra properties are read in one structured numpy view, OBJ lines continued
with a trailing backslash are joined. A file with no faces is a point cloud: :func:`read_mesh`
refuses it unless ``allow_point_cloud=True`` (or :func:`read_points`). An OBJ face with fewer than
3 corners is refused with its line number (trimesh drops it silently; a face that is an edge means
the file is not the surface it claims, and dropping it would change the connectivity the dataset
relies on). Non-finite vertex colours are read as black with a :class:`MeshWarning` naming the first
vertex: a colour is not geometry, so it must not reject a scan nor rescale the other colours.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bodydata.errors import MeshError
from bodydata.fsutil import atomic_path
from bodydata.mesh.validate import check_mesh_arrays

SUPPORTED_SUFFIXES = (".ply", ".obj", ".off")


class MeshWarning(UserWarning):
    """A mesh file was read after a repair (non-finite colours blanked); the message names the file."""


@dataclass
class MeshData:
    """A mesh as read from disk.

    vertices : (n, 3) float64
    faces : (m, 3) int64, 0-based
    colors : (n, 3) uint8 or None (per-vertex RGB, if the file has it)
    path : str or None
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None = None
    path: str | None = None

    @property
    def is_point_cloud(self) -> bool:
        """True when the file had vertices but no faces (only :func:`read_points` / ``allow_point_cloud`` give one)."""
        return len(self.faces) == 0


def read_mesh(
    path: str | os.PathLike,
    expected_vertices: int | None = None,
    expected_faces: np.ndarray | None = None,
    triangulate: bool = True,
    check_degenerate: bool = True,
    allow_point_cloud: bool = False,
) -> MeshData:
    """Read a PLY/OBJ/OFF file and validate it.

    Parameters
    ----------
    path : file path; the format is chosen by the suffix.
    expected_vertices : if given, the vertex count the topology requires.
    expected_faces : (m, 3) int if given, the faces the file must have (same connectivity).
    triangulate : polygons with more than 3 corners are fan-triangulated; with False they are an error.
    check_degenerate : faces that repeat a vertex are an error.
    allow_point_cloud : a file without faces is returned (``faces`` of shape (0, 3),
        ``is_point_cloud`` True); by default it is an error "no faces: a point cloud".

    Raises
    ------
    MeshError : one line ``"<path>: <reason>"``.
    """
    path = Path(path)
    if not path.exists():
        raise MeshError(path, "file does not exist")
    if path.is_dir():
        raise MeshError(path, "is a folder, not a mesh file")
    if path.stat().st_size == 0:
        raise MeshError(path, "file is empty")
    suffix = path.suffix.lower()
    reader = {".ply": _read_ply, ".obj": _read_obj, ".off": _read_off}.get(suffix)
    if reader is None:
        raise MeshError(path, f"unsupported format {suffix!r} (expected one of {', '.join(SUPPORTED_SUFFIXES)})")
    try:
        vertices, polygons, colors = reader(path)
    except MeshError:
        raise
    except OSError as exc:
        raise MeshError(path, f"cannot read: {exc.strerror or exc}") from None
    except (ValueError, IndexError, UnicodeDecodeError, OverflowError) as exc:
        raise MeshError(path, f"cannot parse {suffix[1:].upper()}: {exc}") from None
    faces = _polygons_to_triangles(path, polygons, triangulate)
    if len(faces) == 0 and not allow_point_cloud:
        raise MeshError(path, f"no faces: a point cloud of {len(vertices)} points, not a mesh")
    check_mesh_arrays(
        vertices,
        faces,
        path=path,
        expected_vertices=expected_vertices,
        expected_faces=expected_faces,
        check_degenerate=check_degenerate,
    )
    return MeshData(vertices=vertices, faces=faces, colors=colors, path=str(path))


def read_points(path: str | os.PathLike, expected_vertices: int | None = None) -> MeshData:
    """Read a point cloud or a mesh (its faces are kept, ``is_point_cloud`` says which); errors as :func:`read_mesh`."""
    return read_mesh(path, expected_vertices=expected_vertices, allow_point_cloud=True)


def write_mesh(
    path: str | os.PathLike,
    vertices: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray | None = None,
    binary: bool = True,
) -> Path:
    """Write a mesh atomically (temp file in the same folder, then rename).

    vertices : (n, 3) float; faces : (m, 3) int; colors : (n, 3) uint8 or None.
    PLY is binary little-endian unless ``binary=False``; OBJ and OFF are ASCII. Coordinates are
    written with full float64 precision (PLY binary as double).
    """
    path = Path(path)
    # Validate before casting so float face arrays or object vertices are reported, not truncated.
    check_mesh_arrays(vertices, faces, path=path, check_degenerate=False)
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if colors is not None:
        colors = np.asarray(colors)
        if colors.shape != vertices.shape:
            raise MeshError(path, f"colors have shape {colors.shape}, expected {vertices.shape}")
        if not np.issubdtype(colors.dtype, np.number) or not np.isfinite(colors).all():
            raise MeshError(path, "colors must be finite numbers (uint8 0..255)")
        colors = np.clip(colors, 0, 255).astype(np.uint8)
    suffix = path.suffix.lower()
    writer = {".ply": _write_ply, ".obj": _write_obj, ".off": _write_off}.get(suffix)
    if writer is None:
        raise MeshError(path, f"unsupported format {suffix!r} (expected one of {', '.join(SUPPORTED_SUFFIXES)})")
    with atomic_path(path) as tmp:
        if suffix == ".ply":
            _write_ply(tmp, vertices, faces, colors, binary)
        else:
            writer(tmp, vertices, faces, colors)
    return path


# ----------------------------------------------------------------------------------------------
# colours


def _colors_to_uint8(path: Path, colors: np.ndarray, scale: bool | None) -> np.ndarray:
    """(n, 3) float colours -> (n, 3) uint8.

    scale : True multiplies by 255 (values in [0, 1]), False keeps 0..255, None decides from the
    finite values (all <= 1 means [0, 1]). Non-finite entries become 0 with a :class:`MeshWarning`:
    one NaN must neither change how the other colours are scaled nor reject the mesh.
    """
    colors = np.asarray(colors, dtype=np.float64)
    finite = np.isfinite(colors)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=1))
        warnings.warn(f"{path}: {len(bad)} vertex colours are not finite (first: vertex {bad[0]}); read as black",
                      MeshWarning, stacklevel=4)
        colors = np.where(finite, colors, 0.0)
    if scale is None:
        scale = bool(finite.any()) and float(colors[finite].max()) <= 1.0
    return np.clip(np.round(colors * 255.0 if scale else colors), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# polygons


def _polygons_to_triangles(path: Path, polygons: list[np.ndarray] | np.ndarray, triangulate: bool) -> np.ndarray:
    """Turn a list of index arrays (or an (m, k) array) into (t, 3) int64 triangles by fans."""
    if isinstance(polygons, np.ndarray):
        if polygons.ndim == 2 and polygons.shape[1] == 3:
            return polygons.astype(np.int64, copy=False)
        polygons = list(polygons)
    if len(polygons) == 0:
        return np.zeros((0, 3), dtype=np.int64)
    sizes = np.fromiter((len(p) for p in polygons), dtype=np.int64, count=len(polygons))
    if np.any(sizes < 3):
        bad = int(np.argmax(sizes < 3))
        raise MeshError(path, f"face {bad} has {int(sizes[bad])} corners (a face needs at least 3)")
    if np.all(sizes == 3):
        return np.asarray(polygons, dtype=np.int64).reshape(-1, 3)
    if not triangulate:
        bad = int(np.argmax(sizes != 3))
        raise MeshError(path, f"face {bad} has {int(sizes[bad])} corners; only triangles are accepted here")
    tris: list[list[int]] = []
    for poly in polygons:
        p = [int(x) for x in poly]
        for k in range(1, len(p) - 1):
            tris.append([p[0], p[k], p[k + 1]])
    return np.asarray(tris, dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# OBJ

_OBJ_FACE_INDEX = re.compile(r"^(-?\d+)")


def _obj_lines(fh):
    """(line number, text) of each logical OBJ line: a line ending in a backslash continues on the next."""
    text = fh.read()  # text mode: "\r\n" is already "\n"
    lines = text.split("\n")
    if "\\\n" not in text and not text.endswith("\\"):  # the common case: the lines as they are
        yield from enumerate(lines, 1)
        return
    pending, start = "", 0
    for lineno, stripped in enumerate(lines, 1):
        if stripped.endswith("\\"):
            if not pending:
                start = lineno
            pending += stripped[:-1] + " "
            continue
        if pending:
            yield start, pending + stripped
            pending = ""
        else:
            yield lineno, stripped
    if pending:
        yield start, pending


def _read_obj(path: Path):
    verts: list[list[float]] = []
    colors: list[list[float]] = []
    polygons: list[list[int]] = []
    with open(path, "r", encoding="utf-8", errors="strict") as fh:
        for lineno, line in _obj_lines(fh):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            tag = parts[0]
            if tag == "v":
                if len(parts) < 4:
                    raise MeshError(path, f"line {lineno}: vertex with fewer than 3 coordinates")
                try:
                    xyz = [float(parts[1]), float(parts[2]), float(parts[3])]
                except ValueError:
                    raise MeshError(path, f"line {lineno}: vertex coordinates are not numbers") from None
                verts.append(xyz)
                if len(parts) >= 7:
                    colors.append([float(x) for x in parts[4:7]])
            elif tag == "f":
                idx = []
                for tok in parts[1:]:
                    m = _OBJ_FACE_INDEX.match(tok)
                    if m is None:
                        raise MeshError(path, f"line {lineno}: bad face index {tok!r}")
                    i = int(m.group(1))
                    # OBJ is 1-based; negative indices count back from the last vertex read so far.
                    idx.append(i - 1 if i > 0 else len(verts) + i)
                    if i == 0:
                        raise MeshError(path, f"line {lineno}: face index 0 (OBJ indices start at 1)")
                if len(idx) < 3:
                    raise MeshError(path, f"line {lineno}: face {len(polygons)} has {len(idx)} corners "
                                          "(a face needs at least 3)")
                polygons.append(idx)
    if not verts:
        raise MeshError(path, "no vertices found")
    vertices = np.asarray(verts, dtype=np.float64)
    rgb = None
    if colors and len(colors) == len(verts):
        # Vertex colours in OBJ are floats in [0, 1] by convention, but some tools write 0..255.
        rgb = _colors_to_uint8(path, np.asarray(colors, dtype=np.float64), scale=None)
    return vertices, polygons, rgb


def _write_obj(path: Path, vertices, faces, colors) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        if colors is None:
            np.savetxt(fh, vertices, fmt="v %.17g %.17g %.17g")
        else:
            data = np.hstack([vertices, colors.astype(np.float64) / 255.0])
            np.savetxt(fh, data, fmt="v %.17g %.17g %.17g %.6g %.6g %.6g")
        np.savetxt(fh, faces + 1, fmt="f %d %d %d")


# ----------------------------------------------------------------------------------------------
# OFF


def _read_off(path: Path):
    with open(path, "r", encoding="utf-8", errors="strict") as fh:
        text = fh.read()
    # Strip comments, then read a token stream: the header may share a line with the counts.
    lines = [ln.split("#", 1)[0] for ln in text.splitlines()]
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise MeshError(path, "file has no content")
    first = lines[0].split()
    head = first[0]
    if not head.endswith("OFF"):
        raise MeshError(path, f"unparsable header: expected 'OFF', found {head[:20]!r}")
    has_color = head.startswith("C")
    rest = first[1:]
    line_i = 1
    if not rest:
        if len(lines) < 2:
            raise MeshError(path, "unparsable header: missing vertex/face counts")
        rest = lines[1].split()
        line_i = 2
    try:
        nv, nf = int(rest[0]), int(rest[1])
    except (ValueError, IndexError):
        raise MeshError(path, "unparsable header: vertex/face counts are not integers") from None
    if nv <= 0:
        raise MeshError(path, "header declares no vertices")
    if len(lines) < line_i + nv + nf:
        raise MeshError(path, f"truncated: header declares {nv} vertices and {nf} faces, file has {len(lines) - line_i} data lines")
    vrows = [ln.split() for ln in lines[line_i : line_i + nv]]
    try:
        vertices = np.asarray([[float(r[0]), float(r[1]), float(r[2])] for r in vrows], dtype=np.float64)
    except (ValueError, IndexError):
        raise MeshError(path, "vertex lines are not 3 numbers") from None
    colors = None
    if has_color and all(len(r) >= 6 for r in vrows):
        c = np.asarray([[float(x) for x in r[3:6]] for r in vrows])
        # OFF colours are integers 0..255 or floats 0..1; the notation tells which (an all-0/1
        # integer colour must not be scaled by 255).
        is_float = any(("." in x or "e" in x.lower()) for r in vrows for x in r[3:6])
        colors = _colors_to_uint8(path, c, scale=is_float)
    polygons = []
    for k, ln in enumerate(lines[line_i + nv : line_i + nv + nf]):
        tok = ln.split()
        try:
            cnt = int(tok[0])
            idx = [int(t) for t in tok[1 : 1 + cnt]]
        except (ValueError, IndexError):
            raise MeshError(path, f"face {k} is not a list of integers") from None
        if len(idx) != cnt:
            raise MeshError(path, f"face {k} declares {cnt} corners but lists {len(idx)}")
        polygons.append(idx)
    return vertices, polygons, colors


def _write_off(path: Path, vertices, faces, colors) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("COFF\n" if colors is not None else "OFF\n")
        fh.write(f"{len(vertices)} {len(faces)} 0\n")
        if colors is None:
            np.savetxt(fh, vertices, fmt="%.17g %.17g %.17g")
        else:
            data = np.hstack([vertices, colors.astype(np.float64)])
            np.savetxt(fh, data, fmt="%.17g %.17g %.17g %d %d %d")
        np.savetxt(fh, np.hstack([np.full((len(faces), 1), 3), faces]), fmt="%d %d %d %d")


# ----------------------------------------------------------------------------------------------
# PLY

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


@dataclass
class _PlyElement:
    name: str
    count: int
    props: list  # (name, dtype) or (name, count_dtype, item_dtype) for lists


def _parse_ply_header(path: Path, fh) -> tuple[str, list[_PlyElement]]:
    magic = fh.readline()
    if magic.strip() != b"ply":
        raise MeshError(path, "unparsable header: file does not start with 'ply'")
    fmt = None
    elements: list[_PlyElement] = []
    while True:
        raw = fh.readline()
        if not raw:
            raise MeshError(path, "unparsable header: no 'end_header' line")
        try:
            line = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise MeshError(path, "unparsable header: non-ASCII bytes before 'end_header'") from None
        if line == "end_header":
            break
        tok = line.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format":
            if len(tok) < 2 or tok[1] not in ("ascii", "binary_little_endian", "binary_big_endian"):
                raise MeshError(path, f"unparsable header: unknown format line {line!r}")
            fmt = tok[1]
        elif tok[0] == "element":
            if len(tok) != 3:
                raise MeshError(path, f"unparsable header: bad element line {line!r}")
            try:
                count = int(tok[2])
            except ValueError:
                raise MeshError(path, f"unparsable header: element count is not an integer in {line!r}") from None
            if count < 0:
                raise MeshError(path, f"unparsable header: negative element count in {line!r}")
            elements.append(_PlyElement(tok[1], count, []))
        elif tok[0] == "property":
            if not elements:
                raise MeshError(path, "unparsable header: property before any element")
            if len(tok) < 3:
                raise MeshError(path, f"unparsable header: bad property {line!r}")
            if tok[1] == "list":
                if len(tok) != 5 or tok[2] not in _PLY_TYPES or tok[3] not in _PLY_TYPES:
                    raise MeshError(path, f"unparsable header: bad list property {line!r}")
                elements[-1].props.append((tok[4], _PLY_TYPES[tok[2]], _PLY_TYPES[tok[3]]))
            else:
                if len(tok) != 3 or tok[1] not in _PLY_TYPES:
                    raise MeshError(path, f"unparsable header: bad property {line!r}")
                elements[-1].props.append((tok[2], _PLY_TYPES[tok[1]]))
        else:
            raise MeshError(path, f"unparsable header: unknown line {line!r}")
    if fmt is None:
        raise MeshError(path, "unparsable header: no 'format' line")
    return fmt, elements


def _read_ply(path: Path):
    with open(path, "rb") as fh:
        fmt, elements = _parse_ply_header(path, fh)
        body = fh.read()
    names = [e.name for e in elements]
    if "vertex" not in names:
        raise MeshError(path, "no 'vertex' element in header")
    data: dict[str, dict[str, np.ndarray] | list] = {}
    if fmt == "ascii":
        tokens = body.split()
        pos = 0
        for el in elements:
            if all(len(p) == 2 for p in el.props):
                width = len(el.props)
                chunk = tokens[pos : pos + width * el.count]
                if len(chunk) < width * el.count:
                    raise MeshError(path, f"truncated: element {el.name!r} needs {el.count} rows")
                arr = np.asarray(chunk, dtype=np.float64).reshape(el.count, width)
                data[el.name] = {p[0]: arr[:, j] for j, p in enumerate(el.props)}
                pos += width * el.count
            else:
                pos = _read_ply_ascii_list_element(path, tokens, pos, el, data)
    else:
        endian = "<" if fmt == "binary_little_endian" else ">"
        offset = 0
        for el in elements:
            if all(len(p) == 2 for p in el.props):
                dt = np.dtype([(p[0], endian + p[1]) for p in el.props])
                need = dt.itemsize * el.count
                if offset + need > len(body):
                    raise MeshError(path, f"truncated: element {el.name!r} needs {need} bytes, {len(body) - offset} left")
                arr = np.frombuffer(body, dtype=dt, count=el.count, offset=offset)
                data[el.name] = {p[0]: arr[p[0]] for p in el.props}
                offset += need
            else:
                offset = _read_ply_binary_list_element(path, body, offset, el, endian, data)
    vx = data["vertex"]
    for c in "xyz":
        if c not in vx:
            raise MeshError(path, f"vertex element has no {c!r} property")
    vertices = np.stack([np.asarray(vx[c], dtype=np.float64) for c in "xyz"], axis=1)
    colors = None
    if all(c in vx for c in ("red", "green", "blue")):
        colors = np.stack([np.asarray(vx[c], dtype=np.float64) for c in ("red", "green", "blue")], axis=1)
        # Scale by the declared type, not the values: ASCII bodies are parsed as floats, and an
        # all-0/1 uchar colour must stay 0/1. Float colour properties are in [0, 1] by convention.
        vprops = {p[0]: p[1] for p in next(e for e in elements if e.name == "vertex").props if len(p) == 2}
        colors = _colors_to_uint8(path, colors, scale=np.dtype(vprops["red"]).kind == "f")
    polygons: list | np.ndarray = []
    if "face" in data:
        fc = data["face"]
        key = "vertex_indices" if "vertex_indices" in fc else ("vertex_index" if "vertex_index" in fc else None)
        if key is None:
            raise MeshError(path, "face element has no 'vertex_indices' list")
        polygons = fc[key]
    return vertices, polygons, colors


def _ply_number(path: Path, el: _PlyElement, row: int, prop: str, token: bytes, dtype: str):
    """One ASCII PLY value as its declared type; a bad token is a one-line error naming element, row and property."""
    try:
        return float(token) if np.dtype(dtype).kind == "f" else int(token)
    except ValueError:
        kind = "a number" if np.dtype(dtype).kind == "f" else "an integer"
        raise MeshError(path, f"element {el.name!r} row {row} property {prop!r}: {token[:20]!r} is not {kind}"
                        ) from None


def _read_ply_ascii_table(tokens: list[bytes], pos: int, el: _PlyElement) -> tuple[dict, int] | None:
    """Rows of an ASCII element whose lists all have the lengths of its first row, as one (count, width) table.

    Returns ({property: column(s)}, next position), or None when the rows differ in length or a token does
    not parse (the row-by-row reader then reads it or names the bad token). Rows before the first differing
    one are aligned, so that row's count token differs from the first row's: the check is exact.
    """
    layout: list[tuple[int, int]] = []  # (first column, number of values) of each property
    at = pos
    for p in el.props:
        if len(p) == 2:
            layout.append((at - pos, 1))
            at += 1
            continue
        if at >= len(tokens) or not tokens[at].isdigit():
            return None
        n = int(tokens[at])
        layout.append((at - pos + 1, n))
        at += 1 + n
    width = at - pos
    if width == 0 or pos + width * el.count > len(tokens):
        return None
    table = np.array(tokens[pos : pos + width * el.count]).reshape(el.count, width)
    cols: dict[str, np.ndarray] = {}
    try:
        for p, (col, n) in zip(el.props, layout):
            if len(p) == 3 and not np.all(table[:, col - 1].astype(np.int64) == n):
                return None
            kind = np.dtype(p[-1]).kind
            values = table[:, col : col + n].astype(np.float64 if kind == "f" else np.int64)
            cols[p[0]] = values[:, 0] if len(p) == 2 else values
    except ValueError:
        return None
    return cols, pos + width * el.count


def _read_ply_ascii_list_element(path: Path, tokens: list[bytes], pos: int, el: _PlyElement, data: dict) -> int:
    """Rows of an ASCII element with list properties; list items are parsed by their declared type."""
    fast = _read_ply_ascii_table(tokens, pos, el) if el.count > 0 else None
    if fast is not None:
        data[el.name] = fast[0]
        return fast[1]
    cols: dict[str, list] = {p[0]: [] for p in el.props}
    for row in range(el.count):
        for p in el.props:
            if pos >= len(tokens):
                raise MeshError(path, f"truncated: element {el.name!r} needs {el.count} rows")
            if len(p) == 2:
                cols[p[0]].append(_ply_number(path, el, row, p[0], tokens[pos], p[1]))
                pos += 1
                continue
            n = _ply_number(path, el, row, p[0], tokens[pos], p[1])
            items = tokens[pos + 1 : pos + 1 + n]
            if n < 0 or len(items) != n:
                raise MeshError(path, f"truncated: element {el.name!r} row {row} list {p[0]!r} shorter than declared")
            cols[p[0]].append([_ply_number(path, el, row, p[0], t, p[2]) for t in items])
            pos += 1 + n
    data[el.name] = cols
    return pos


def _ply_row_dtype(el: _PlyElement, endian: str, counts: dict[str, int]) -> np.dtype:
    """Structured dtype of one binary row when every list property ``name`` has ``counts[name]`` items."""
    fields = []
    for p in el.props:
        if len(p) == 2:
            fields.append((p[0], endian + p[1]))
        else:
            fields.append((f"{p[0]}:count", endian + p[1]))
            fields.append((p[0], endian + p[2], (counts[p[0]],)))
    return np.dtype(fields)


def _read_ply_binary_list_element(path, body, offset, el, endian, data) -> int:
    """Rows of a binary element with list properties.

    Scans write every face with the same corner count (and the same length of any other list, e.g.
    MeshLab's 6 per-face texture coordinates), so the counts of the first row are assumed for all
    rows and the element is one structured numpy view; the counts are then checked, and only an
    element whose rows really differ (mixed polygons) is read row by row.
    """
    if el.count > 0:
        counts: dict[str, int] = {}
        at = offset
        for p in el.props:
            if len(p) == 2:
                at += np.dtype(p[1]).itemsize
                continue
            cdt = np.dtype(endian + p[1])
            if at + cdt.itemsize > len(body):
                raise MeshError(path, f"truncated: element {el.name!r} needs {el.count} rows")
            counts[p[0]] = int(np.frombuffer(body, dtype=cdt, count=1, offset=at)[0])
            at += cdt.itemsize + counts[p[0]] * np.dtype(p[2]).itemsize
        row = _ply_row_dtype(el, endian, counts)
        need = row.itemsize * el.count
        if all(k >= 0 for k in counts.values()) and offset + need <= len(body):
            arr = np.frombuffer(body, dtype=row, count=el.count, offset=offset)
            if all(np.all(arr[f"{name}:count"] == k) for name, k in counts.items()):
                data[el.name] = {
                    p[0]: arr[p[0]].astype(np.int64 if len(p) == 3 and np.dtype(p[2]).kind in "iu" else arr[p[0]].dtype)
                    for p in el.props
                }
                return offset + need
    cols: dict[str, list] = {p[0]: [] for p in el.props}
    for _ in range(el.count):
        for p in el.props:
            if len(p) == 2:
                dt = np.dtype(endian + p[1])
                if offset + dt.itemsize > len(body):
                    raise MeshError(path, f"truncated: element {el.name!r} needs {el.count} rows")
                cols[p[0]].append(np.frombuffer(body, dtype=dt, count=1, offset=offset)[0])
                offset += dt.itemsize
            else:
                cdt, idt = np.dtype(endian + p[1]), np.dtype(endian + p[2])
                if offset + cdt.itemsize > len(body):
                    raise MeshError(path, f"truncated: element {el.name!r} needs {el.count} rows")
                n = int(np.frombuffer(body, dtype=cdt, count=1, offset=offset)[0])
                offset += cdt.itemsize
                if offset + n * idt.itemsize > len(body):
                    raise MeshError(path, f"truncated: element {el.name!r} list shorter than declared")
                items = np.frombuffer(body, dtype=idt, count=n, offset=offset)
                cols[p[0]].append(items.astype(np.int64) if idt.kind in "iu" else items)
                offset += n * idt.itemsize
    data[el.name] = cols
    return offset


def _write_ply(path: Path, vertices, faces, colors, binary: bool) -> None:
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0", "comment written by bodydata",
              f"element vertex {len(vertices)}", "property double x", "property double y", "property double z"]
    if colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        if binary:
            vfields = [("x", "<f8"), ("y", "<f8"), ("z", "<f8")]
            if colors is not None:
                vfields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
            v = np.empty(len(vertices), dtype=vfields)
            v["x"], v["y"], v["z"] = vertices[:, 0], vertices[:, 1], vertices[:, 2]
            if colors is not None:
                v["red"], v["green"], v["blue"] = colors[:, 0], colors[:, 1], colors[:, 2]
            fh.write(v.tobytes())
            f = np.empty(len(faces), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
            f["n"] = 3
            f["idx"] = faces
            fh.write(f.tobytes())
        else:
            if colors is None:
                np.savetxt(fh, vertices, fmt="%.17g %.17g %.17g")
            else:
                np.savetxt(fh, np.hstack([vertices, colors]), fmt="%.17g %.17g %.17g %d %d %d")
            np.savetxt(fh, np.hstack([np.full((len(faces), 1), 3), faces]), fmt="%d %d %d %d")
