"""The reference template (mesh + 16 body parts + landmarks + axes): dataclass, folder format, validation, loading.

A template folder holds four files, each written atomically, ``template.json`` last (so its
presence means the folder is complete)::

    mesh.ply        binary PLY, float64 vertices (metres), int faces, vertex colours = part colours
    parts.csv       vertex_id,part_id,part_name   (one row per vertex, part_id in 0..15)
    landmarks.csv   name,vertex_id
    template.json   {"format": "bodydata-template", "version": 1, "name", "n_vertices", "n_faces",
                     "units", "up_axis", "front_axis", "left_axis", "part_names", "files", "sha256", "meta"}

Axes are signed axis names: ``up_axis`` points from the feet to the head, ``front_axis`` the way
the subject faces; the subject's left is ``up x front`` (recorded as ``left_axis``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bodydata.errors import BodydataError, TemplateError
from bodydata.fsutil import atomic_write_text, sha256_file
from bodydata.templates.landmarks import missing_names, read_landmarks_csv, validate_landmarks, write_landmarks_csv
from bodydata.templates.parts import (
    PART_COLORS,
    PART_NAMES,
    part_graph,
    part_graph_problems,
    read_parts_csv,
    regions_per_part,
    write_parts_csv,
)

FORMAT = "bodydata-template"
FORMAT_VERSION = 1
FILES = {"mesh": "mesh.ply", "parts": "parts.csv", "landmarks": "landmarks.csv"}
TEMPLATE_JSON = "template.json"
BUILTIN_NAMES = ("anny", "anny-lite", "scape")

_AXES = {f"{s}{a}" for s in ("", "-") for a in "xyz"}


def axis_vector(axis: str) -> np.ndarray:
    """(3,) float64 unit vector of a signed axis name ('z', '-y')."""
    if axis not in _AXES:
        raise TemplateError(f"axis {axis!r} is not one of {sorted(_AXES)}")
    vec = np.zeros(3)
    vec["xyz".index(axis[-1])] = -1.0 if axis.startswith("-") else 1.0
    return vec


def axis_name(vec: np.ndarray) -> str:
    """Signed axis name of a unit coordinate vector (inverse of :func:`axis_vector`)."""
    k = int(np.argmax(np.abs(vec)))
    return ("-" if vec[k] < 0 else "") + "xyz"[k]


@dataclass
class Check:
    """One validity check: ``required`` ones make :meth:`Template.validate` fail; others are information."""

    name: str
    ok: bool
    detail: str = ""
    required: bool = True


@dataclass
class Template:
    """A reference body mesh with its 16-part segmentation and landmarks.

    vertices : (n, 3) float64, metres. faces : (m, 3) int64. part_labels : (n,) int64 in 0..15.
    part_names : the 16 part names (:data:`~bodydata.templates.parts.PART_NAMES`).
    landmarks : {name: vertex id}. units : 'm'. up_axis / front_axis : signed axis names.
    meta : JSON-serialisable provenance (builder, sources, versions, expect_watertight, ...);
    ``meta['cavity_vertices']`` (optional) lists vertices no scanner can see (mouth cavity, tongue).
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    part_labels: np.ndarray
    part_names: list[str] = field(default_factory=lambda: list(PART_NAMES))
    landmarks: dict[str, int] = field(default_factory=dict)
    units: str = "m"
    up_axis: str = "z"
    front_axis: str = "-y"
    meta: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ derived
    @property
    def n_vertices(self) -> int:
        return int(len(self.vertices))

    @property
    def n_faces(self) -> int:
        return int(len(self.faces))

    @property
    def surface_mask(self) -> np.ndarray:
        """(n,) bool: False on the vertices no scanner sees (``meta['cavity_vertices']``), True elsewhere."""
        mask = np.ones(self.n_vertices, bool)
        mask[np.asarray(self.meta.get("cavity_vertices", []), np.int64)] = False
        return mask

    @property
    def left_axis(self) -> str:
        """The subject's left, ``up x front``, as a signed axis name."""
        return axis_name(np.cross(axis_vector(self.up_axis), axis_vector(self.front_axis)))

    def part_graph(self):
        """networkx.Graph of the parts (nodes 0..15 with ``name``/``n_vertices``, edges with ``n_edges``)."""
        return part_graph(self.faces, self.part_labels, self.part_names)

    def part_sizes(self) -> dict[str, int]:
        """Vertex count of each part, in part order."""
        counts = np.bincount(np.asarray(self.part_labels, dtype=np.int64), minlength=len(self.part_names))
        return {name: int(c) for name, c in zip(self.part_names, counts)}

    def landmark_positions(self) -> tuple[list[str], np.ndarray]:
        """Landmark names and their positions (k, 3) float64."""
        names = list(self.landmarks)
        ids = np.array([self.landmarks[n] for n in names], dtype=np.int64)
        return names, np.asarray(self.vertices, dtype=np.float64)[ids].reshape(-1, 3)

    # ------------------------------------------------------------------ validation
    def _where(self, path: str | os.PathLike | None) -> str:
        return f"{path}: " if path is not None else f"template {self.name!r}: "

    def validate_structure(self, path: str | os.PathLike | None = None) -> None:
        """Raise TemplateError (one line) unless arrays, names, labels, landmarks, units and axes are well-formed.

        Also normalises dtypes in place (float64 vertices, int64 faces and labels) once they are valid.
        """
        from bodydata.mesh.validate import check_mesh_arrays

        where = self._where(path)
        try:
            check_mesh_arrays(self.vertices, self.faces, check_degenerate=True)
        except BodydataError as exc:
            raise TemplateError(f"{where}{getattr(exc, 'reason', str(exc))}") from None
        self.vertices = np.asarray(self.vertices, dtype=np.float64)
        self.faces = np.asarray(self.faces, dtype=np.int64).reshape(-1, 3)
        names = list(self.part_names)
        if len(names) != len(PART_NAMES) or len(set(names)) != len(names):
            raise TemplateError(f"{where}expected {len(PART_NAMES)} distinct part names, got {len(names)} ({len(set(names))} distinct)")
        labels = np.asarray(self.part_labels)
        n = len(self.vertices)
        if labels.ndim != 1 or len(labels) != n:
            raise TemplateError(f"{where}part_labels has shape {labels.shape}, expected ({n},): one label per vertex")
        if not np.issubdtype(labels.dtype, np.integer):
            raise TemplateError(f"{where}part_labels have non-integer dtype {labels.dtype}")
        bad = np.flatnonzero((labels < 0) | (labels >= len(names)))
        if len(bad):
            raise TemplateError(
                f"{where}part label {int(labels[bad[0]])} at vertex {int(bad[0])} is outside 0..{len(names) - 1}"
                + (f" ({len(bad)} such vertices)" if len(bad) > 1 else "")
            )
        self.part_labels = labels.astype(np.int64)
        validate_landmarks(self.landmarks, n, path=path if path is not None else f"template {self.name!r}")
        self.landmarks = {k: int(v) for k, v in self.landmarks.items()}
        if self.units != "m":
            raise TemplateError(f"{where}units must be 'm' (metres), got {self.units!r}")
        up, front = axis_vector(self.up_axis), axis_vector(self.front_axis)
        if abs(float(up @ front)) > 0:
            raise TemplateError(f"{where}up_axis {self.up_axis!r} and front_axis {self.front_axis!r} must be perpendicular")

    def checks(self) -> list[Check]:
        """Every validity check with its outcome (the structure must be valid first)."""
        from bodydata.mesh.topology import is_edge_manifold, is_vertex_manifold, is_watertight

        self.validate_structure()
        labels, faces, v = self.part_labels, self.faces, self.vertices
        out: list[Check] = []
        sizes = self.part_sizes()
        empty = [k for k, c in sizes.items() if c == 0]
        out.append(Check("every part has vertices", not empty, f"empty: {', '.join(empty)}" if empty else "16 parts"))
        regions = regions_per_part(faces, labels, len(self.part_names))
        split = [f"{self.part_names[i]} ({int(r)} regions)" for i, r in enumerate(regions) if r > 1]
        out.append(Check("each part is one connected region", not split, ", ".join(split)))
        graph = self.part_graph()
        problems = part_graph_problems(graph, self.part_names)
        out.append(Check("part graph connected and anatomically plausible", not problems, "; ".join(problems)))
        out.append(self._left_right_check())
        out.append(self._landmark_side_check())
        out.append(self._head_up_check())
        expect_closed = bool(self.meta.get("expect_watertight", False))
        em, vm = is_edge_manifold(faces), is_vertex_manifold(faces, len(v))
        out.append(Check("mesh is a manifold", em and vm, f"edge-manifold={em}, vertex-manifold={vm}", required=expect_closed))
        wt = is_watertight(faces)
        out.append(Check("mesh is watertight", wt, "" if wt else "has boundary edges", required=expect_closed))
        missing = missing_names(self.landmarks)
        out.append(
            Check(
                "landmarks cover the shared vocabulary",
                not missing,
                f"{len(self.landmarks)} landmarks" + (f"; missing: {', '.join(missing)}" if missing else ""),
                required=False,
            )
        )
        return out

    def _left_right_check(self) -> Check:
        left = axis_vector(self.left_axis)
        centre = self.vertices.mean(axis=0)
        wrong = []
        for i, name in enumerate(self.part_names):
            if name.endswith(("_L", "_R")) and np.any(self.part_labels == i):
                side = float(((self.vertices[self.part_labels == i] - centre) @ left).mean())
                if (side > 0) != name.endswith("_L"):
                    wrong.append(f"{name} at {side * 1000:+.0f} mm along the subject's left")
        return Check("_L parts on the subject's left (up x front)", not wrong, "; ".join(wrong))

    def _landmark_side_check(self) -> Check:
        left = axis_vector(self.left_axis)
        centre = self.vertices.mean(axis=0)
        wrong = []
        for name, vid in self.landmarks.items():
            if name.endswith(("_L", "_R")):
                side = float((self.vertices[vid] - centre) @ left)
                if (side > 0) != name.endswith("_L"):
                    wrong.append(f"{name} at {side * 1000:+.0f} mm")
        return Check("_L landmarks on the subject's left", not wrong, "; ".join(wrong))

    def _head_up_check(self) -> Check:
        up = axis_vector(self.up_axis)
        heights = {
            name: float((self.vertices[self.part_labels == i] @ up).mean())
            for i, name in enumerate(self.part_names)
            if np.any(self.part_labels == i)
        }
        top = max(heights, key=heights.get)
        bottom = sorted(heights, key=heights.get)[:2]
        ok = top == "head_neck" and {b.rsplit("_", 1)[0] for b in bottom} == {"foot"}
        return Check("head highest and feet lowest along up_axis", ok, f"highest part {top}, lowest {', '.join(bottom)}")

    def validate(self, strict: bool = True, path: str | os.PathLike | None = None) -> None:
        """Raise TemplateError (one line) on the first problem.

        Structure always (shapes, dtypes, 16 names, one label 0..15 per vertex, landmark ids in range,
        units, axes); with ``strict`` also every required :meth:`checks` entry (parts non-empty and
        connected, plausible connected part graph, left/right and up consistent, watertight when
        ``meta['expect_watertight']``).
        """
        self.validate_structure(path)
        if strict:
            for check in self.checks():
                if check.required and not check.ok:
                    raise TemplateError(f"{self._where(path)}{check.name} fails: {check.detail}")

    # ------------------------------------------------------------------ folder I/O
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the template folder (created if needed); each file atomically, template.json last."""
        from bodydata.mesh import write_mesh

        self.validate_structure()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        colors = np.round(PART_COLORS[self.part_labels] * 255).astype(np.uint8)
        write_mesh(d / FILES["mesh"], self.vertices, self.faces, colors=colors, binary=True)
        write_parts_csv(d / FILES["parts"], self.part_labels, self.part_names)
        write_landmarks_csv(d / FILES["landmarks"], self.landmarks)
        doc = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "name": self.name,
            "n_vertices": self.n_vertices,
            "n_faces": self.n_faces,
            "units": self.units,
            "up_axis": self.up_axis,
            "front_axis": self.front_axis,
            "left_axis": self.left_axis,
            "part_names": list(self.part_names),
            "files": dict(FILES),
            "sha256": {key: sha256_file(d / fname) for key, fname in FILES.items()},
            "meta": self.meta,
        }
        atomic_write_text(d / TEMPLATE_JSON, json.dumps(doc, indent=2, sort_keys=False) + "\n")
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike, verify_checksums: bool = True) -> "Template":
        """Read a template folder written by :meth:`save` and validate its structure.

        Raises TemplateError ("<path>: reason") for a missing/garbled file, a checksum mismatch
        (a file changed after saving), or inconsistent contents.
        """
        from bodydata.mesh import read_mesh

        d = Path(directory)
        jpath = d / TEMPLATE_JSON
        if not d.is_dir():
            raise TemplateError(f"{d}: template folder does not exist")
        if not jpath.is_file():
            raise TemplateError(f"{jpath}: missing; {d} is not a template folder (build one with 'bodydata template build')")
        try:
            doc = json.loads(jpath.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TemplateError(f"{jpath}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise TemplateError(f"{jpath}: not a {FORMAT} file")
        if doc.get("version") != FORMAT_VERSION:
            raise TemplateError(f"{jpath}: format version {doc.get('version')} is not supported (expected {FORMAT_VERSION})")
        files = doc.get("files", FILES)
        for key in FILES:
            p = d / files.get(key, FILES[key])
            if not p.is_file():
                raise TemplateError(f"{p}: missing from the template folder")
            want = doc.get("sha256", {}).get(key)
            if verify_checksums and want and sha256_file(p) != want:
                raise TemplateError(f"{p}: checksum differs from template.json (file changed after the template was saved)")
        try:
            mesh = read_mesh(d / files["mesh"], expected_vertices=doc.get("n_vertices"))
        except BodydataError as exc:
            raise TemplateError(str(exc)) from None
        part_names = list(doc.get("part_names", []))
        labels = read_parts_csv(d / files["parts"], len(mesh.vertices), part_names)
        landmarks = read_landmarks_csv(d / files["landmarks"], n_vertices=len(mesh.vertices))
        tpl = cls(
            name=str(doc.get("name", d.name)),
            vertices=mesh.vertices,
            faces=mesh.faces,
            part_labels=labels,
            part_names=part_names,
            landmarks=landmarks,
            units=doc.get("units", "m"),
            up_axis=doc.get("up_axis", "z"),
            front_axis=doc.get("front_axis", "-y"),
            meta=doc.get("meta", {}),
        )
        if doc.get("n_faces") is not None and tpl.n_faces != doc["n_faces"]:
            raise TemplateError(f"{d / files['mesh']}: has {tpl.n_faces} faces, template.json says {doc['n_faces']}")
        tpl.validate_structure(path=d)
        return tpl

    def equals(self, other: "Template") -> bool:
        """Exact equality of every field (arrays compared element-wise)."""
        return (
            self.name == other.name
            and np.array_equal(self.vertices, other.vertices)
            and np.array_equal(self.faces, other.faces)
            and np.array_equal(self.part_labels, other.part_labels)
            and list(self.part_names) == list(other.part_names)
            and dict(self.landmarks) == dict(other.landmarks)
            and (self.units, self.up_axis, self.front_axis) == (other.units, other.up_axis, other.front_axis)
            and json.loads(json.dumps(self.meta)) == json.loads(json.dumps(other.meta))
        )


# ---------------------------------------------------------------------- building and loading by name
def build_template(name: str, sources: dict[str, str | os.PathLike] | None = None, progress: bool = False) -> Template:
    """Build a template by name.

    ``anny`` / ``anny-lite``: from the installed anny package (no sources).
    ``scape``: ``sources`` = {"mesh": SCAPE-order 12,500-vertex mesh, "faces": a mesh whose faces are
    used (the paper's triangulation), "labels": SPRING ``body_part.obj`` (vertex colours) or a text
    file of 12,500 labels}; see :func:`bodydata.templates.scape.build_scape_template`.
    """
    if name in ("anny", "anny-lite"):
        if sources:
            raise TemplateError(f"template {name!r} is built from the installed anny package and takes no source files")
        from bodydata.templates.anny import build_anny_template

        return build_anny_template(name)
    if name == "scape":
        from bodydata.templates.scape import build_scape_template

        sources = dict(sources or {})
        missing = [k for k in ("mesh", "faces", "labels") if not sources.get(k)]
        if missing:
            raise TemplateError(f"template 'scape' needs source files: {', '.join(missing)} not given")
        return build_scape_template(sources["mesh"], sources["faces"], sources["labels"])
    raise TemplateError(f"unknown template {name!r} (known: {', '.join(BUILTIN_NAMES)})")


def default_cache_dir() -> Path:
    """Where built-in templates are cached: $BODYDATA_CACHE/templates or ~/.cache/bodydata/templates."""
    root = os.environ.get("BODYDATA_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "bodydata") / "templates"


def _builder_digest(name: str) -> str:
    """Short hash of the code and data that define a built-in template, so an edited builder never reuses a stale cache."""
    import hashlib

    from bodydata.templates import anny as anny_module
    from bodydata.templates import parts as parts_module
    from bodydata.templates.landmarks import landmarks_path

    h = hashlib.sha256()
    for p in (Path(anny_module.__file__), Path(parts_module.__file__), Path(__file__)):
        h.update(p.read_bytes())
    lm = landmarks_path(f"anny_{anny_module.TOPOLOGIES[name]}")
    h.update(lm.read_bytes() if lm.is_file() else b"")
    return h.hexdigest()[:10]


def load_template(name_or_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Template:
    """The template other stages use, from a template folder or a built-in name.

    A folder containing ``template.json`` is loaded. ``'anny'`` / ``'anny-lite'`` are built once
    from the installed anny package and cached under ``cache_dir`` (default :func:`default_cache_dir`)
    in a subfolder keyed by the anny version, the format version and a hash of the builder code and
    shipped landmarks; the build is deterministic, so a cached copy equals a fresh build. ``'scape'`` needs user files: build it with
    ``bodydata template build scape`` and pass the folder.
    """
    path = Path(name_or_dir)
    if (path / TEMPLATE_JSON).is_file():
        return Template.load(path)
    name = str(name_or_dir)
    if name in ("anny", "anny-lite"):
        import importlib.metadata

        try:
            anny_version = importlib.metadata.version("anny")
        except importlib.metadata.PackageNotFoundError:
            anny_version = "unknown"
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        folder = folder / f"{name}-anny{anny_version}-v{FORMAT_VERSION}-{_builder_digest(name)}"
        if (folder / TEMPLATE_JSON).is_file():
            try:
                return Template.load(folder)
            except TemplateError:
                pass  # a damaged cache entry is rebuilt below
        tpl = build_template(name)
        try:
            tpl.save(folder)
        except OSError:
            pass  # an unwritable cache only costs a rebuild next time
        return tpl
    if name == "scape":
        raise TemplateError("template 'scape' is built from user files: run 'bodydata template build scape ...' and pass its folder")
    if path.exists():
        raise TemplateError(f"{path}: not a template folder (no {TEMPLATE_JSON})")
    raise TemplateError(f"{name}: neither a template folder nor a built-in template name ({', '.join(BUILTIN_NAMES)})")
