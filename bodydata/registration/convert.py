"""Connectivity conversion of one mesh or a batch: registration, metrics both ways and the torso-aligned copy.

What it is: the template registered onto each mesh, the result measured both ways, a copy put in the template's
frame (torso alignment); the ``conversion.csv`` row format; the panels of the worst conversions' picture.

The convert stage (:mod:`bodydata.pipeline.stage_convert`) is the one driver: it writes, per mesh::

    meshes/<id>.ply     the converted mesh (template connectivity, the input's frame and units)
    aligned/<id>.ply    the same mesh turned rigidly so that its torso best fits the template's
    conversion.csv      one :class:`ConvertRow` per input

Distances are reported as ``*_mm`` = 1000 x the input's length unit (millimetres for metric inputs; for
inputs normalised upstream, such as FAUST_r, thousandths of the input's unit -- the ``units`` column says).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from bodydata.errors import BodydataError
from bodydata.manifest.source_rows import is_normalized
from bodydata.manifest.status import STATUS_DONE, STATUS_FAILED, is_done, normalise_status

if TYPE_CHECKING:
    from bodydata.registration.body_landmarks import BodyLandmarks
    from bodydata.registration.register import Registrar, RegistrationResult
    from bodydata.templates.template import Template

__all__ = ["COLUMNS", "METRICS", "TORSO_PARTS", "ConvertRow", "ConvertTarget", "Conversion", "convert_mesh",
           "convert_meshes", "converted_name", "read_results", "source_landmarks", "torso_aligned", "WorstPanel",
           "worst_panels",
           "write_results"]

# the parts whose rigid fit onto the template's fixes a converted body's frame (they bend least with the pose)
TORSO_PARTS = ("chest", "abdomen", "hips")
NO_LANDMARKS = "no landmarks: none given for this mesh (landmarks_path or a topology with shipped landmarks)"


@dataclass
class ConvertRow:
    """One conversion: ids, where the result is, status ('done' | 'failed'), reason, and the metrics."""

    id: str
    source_path: str
    out_path: str = ""
    units: str = "m"
    status: str = STATUS_FAILED
    reason: str = ""
    n_landmarks: int = 0
    landmark_error_mm: float = float("nan")
    p2m_mean_mm: float = float("nan")   # converted vertices -> input surface
    p2m_p95_mm: float = float("nan")
    m2p_mean_mm: float = float("nan")   # input vertices -> converted surface
    m2p_p95_mm: float = float("nan")
    scale: float = float("nan")
    iterations: int = 0
    seconds: float = float("nan")
    landmarks_from: str = ""           # "given" (file, shipped topology, .vts map) | "body fit" (bodyfit start)
    body_fit_mm: float = float("nan")  # the body fit's two-sided mean distance, when it gave the landmarks
    prior: str = ""  # the prior used: a sparse prior .npz or a run folder (bodydata convert --prior RUN)

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> ConvertRow:
        """A row from text or numbers by column name (a ``conversion.csv`` line); missing numbers are NaN / 0 and a
        legacy status word is read as today's."""
        kw: dict[str, Any] = {}
        for f in fields(cls):
            v = rec.get(f.name, "")
            v = "" if v is None else v
            if f.type in ("int", int):
                kw[f.name] = int(float(v)) if v != "" else 0
            elif f.type in ("float", float):
                kw[f.name] = float(v) if v != "" else float("nan")
            else:
                kw[f.name] = str(v)
        kw["status"] = normalise_status(kw["status"]) if kw["status"] else STATUS_FAILED
        return cls(**kw)


COLUMNS = [f.name for f in fields(ConvertRow)]
# the measured columns of a row (the stage manifest carries them too)
METRICS = ("n_landmarks", "landmark_error_mm", "p2m_mean_mm", "p2m_p95_mm", "m2p_mean_mm", "m2p_p95_mm", "scale",
           "iterations")


@dataclass
class WorstPanel:
    """One converted body of the worst-conversions picture (:func:`bodydata.viz.conversion_worst.draw_worst`).

    title : text above it; vertices : (n, 3) float64, centred, in the template's axes;
    distance_mm : (n,) float64 distance of each vertex to the input surface (NaN: not coloured)."""

    title: str
    vertices: np.ndarray
    distance_mm: np.ndarray


@dataclass
class ConvertTarget:
    """One mesh to convert: vertices (m, 3) float64, faces (k, 3) int64, landmarks {name: vertex id} or None (the
    mesh then fails with the reason), where it came from and its length unit."""

    id: str
    vertices: np.ndarray
    faces: np.ndarray
    landmarks: dict[str, int] | None
    source_path: str = ""
    units: str = "m"


@dataclass
class Conversion:
    """One mesh converted: its row; vertices (n, 3) float64 in the input's frame and units and aligned (n, 3)
    float64 the same body turned onto the template's torso (template axes, input scale), both None when failed."""

    row: ConvertRow
    vertices: np.ndarray | None = None
    aligned: np.ndarray | None = None

    @property
    def done(self) -> bool:
        return self.row.status == STATUS_DONE


def converted_name(mesh_id: str) -> str:
    """The file name of a mesh's converted copy (``meshes/`` and ``aligned/``): its id made file-safe, ``.ply``."""
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", mesh_id).strip("_") or "mesh") + ".ply"


def source_landmarks(row: Any, n_vertices: int) -> dict[str, int] | None:
    """Landmarks of a manifest row's mesh (an object with ``landmarks_path`` and ``topology``): its
    ``landmarks_path`` CSV, else the shipped CSV of its topology (smpl_6890, scape_12500, anny_*), else None."""
    from bodydata.templates.landmarks import TOPOLOGIES, load_landmarks, read_landmarks_csv

    path = getattr(row, "landmarks_path", "") or ""
    if path:
        return read_landmarks_csv(path, n_vertices)
    topo = getattr(row, "topology", "") or ""
    if topo in TOPOLOGIES and TOPOLOGIES[topo] == n_vertices:
        return load_landmarks(topo)
    return None


def torso_aligned(template: Template, result: RegistrationResult) -> np.ndarray:
    """(n, 3) float64: the converted body with the registration's similarity undone (input scale) and then turned
    rigidly so that its torso (:data:`TORSO_PARTS`) best fits the template's torso.

    Why the torso and not the fitted similarity alone: the template-frame body keeps a few degrees of the
    similarity's gauge, and downstream stages need every body in one frame (ACAP features see the rotation)."""
    from bodydata.registration.register import similarity_from_points

    torso = np.isin(np.asarray(template.part_labels), [list(template.part_names).index(n) for n in TORSO_PARTS])
    body = result.scale * result.template_frame
    _, rot, t = similarity_from_points(body[torso], template.vertices[torso], scale=False)
    return body @ rot.T + t


def _measured(registrar: Registrar, target: ConvertTarget, res: RegistrationResult) -> Conversion:
    """The conversion of ``target`` from its registration: status, metrics (distances both ways), aligned copy."""
    from bodydata.registration.metrics import SurfaceDistances, point_to_mesh

    tpl = registrar.template
    row = ConvertRow(id=target.id, source_path=str(target.source_path), units=target.units)
    ignored = registrar.config.ignore_landmarks
    row.n_landmarks = len([k for k in tpl.landmarks if k in (target.landmarks or {}) and k not in ignored])
    row.status, row.reason, row.iterations, row.seconds = res.status, res.reason, res.iterations, res.seconds
    if np.all(np.isfinite(res.vertices)):
        row.scale = res.scale
        row.landmark_error_mm = 1000.0 * res.landmark_error
        # template vertices no scanner sees (mouth cavity) are left out of converted -> input
        keep = np.asarray(tpl.surface_mask, bool)
        sd = SurfaceDistances(point_to_mesh(res.vertices[keep], target.vertices, target.faces),
                              point_to_mesh(target.vertices, res.vertices, tpl.faces)).summary()
        for k, v in sd.items():
            setattr(row, k, v)
    if row.status != STATUS_DONE:
        return Conversion(row)
    return Conversion(row, res.vertices, torso_aligned(tpl, res))


def convert_meshes(registrar: Registrar, targets: Sequence[ConvertTarget],
                   finder: BodyLandmarks | None = None) -> list[Conversion]:
    """Convert several meshes with one :meth:`~bodydata.registration.register.Registrar.register_batch` (each
    result as if registered alone, up to rounding); one :class:`Conversion` per target, in order. A target without
    landmarks gets them from ``finder`` (the body-model start, :mod:`bodydata.registration.body_landmarks`) when
    one is given; a target left without landmarks, or whose body fit or registration fails, comes back failed with
    the reason; numerical breakdowns of the whole batch propagate (ValueError, RuntimeError, ArithmeticError,
    IndexError, LinAlgError)."""
    out: list[Conversion | None] = [None] * len(targets)
    found: dict[int, tuple[str, float, float]] = {}  # target index -> (landmarks_from, body_fit_mm, fit seconds)
    guides: dict[int, np.ndarray] = {}
    todo = []
    for k, t in enumerate(targets):
        if t.landmarks:
            found[k] = ("given", float("nan"), 0.0)
            todo.append(k)
            continue
        reason = NO_LANDMARKS
        if finder is not None:
            try:
                got = finder.find(t.vertices, t.faces, normalised=is_normalized(t.units))
            except BodydataError as exc:  # unusable for a body fit (too few points, NaN): a failed row
                out[k] = Conversion(ConvertRow(id=t.id, source_path=str(t.source_path), units=t.units,
                                               reason=f"no landmarks, and no body-model start: {exc}", seconds=0.0))
                continue
            if got.landmarks:
                t.landmarks = got.landmarks
                found[k] = ("body fit", got.fit.distance_mm, got.fit.seconds)
                if got.guide is not None:
                    guides[k] = got.guide
                todo.append(k)
                continue
            reason = f"no landmarks, and the body-model start failed: {got.reason}"
        out[k] = Conversion(ConvertRow(id=t.id, source_path=str(t.source_path), units=t.units, reason=reason,
                                       seconds=0.0))
    batch = [(targets[k].vertices, targets[k].faces, targets[k].landmarks) for k in todo]
    if not todo:
        results = []
    elif guides:
        results = registrar.register_batch(batch, [guides.get(k) for k in todo])
    else:
        results = registrar.register_batch(batch)
    for k, res in zip(todo, results):
        conv = _measured(registrar, targets[k], res)
        conv.row.landmarks_from, conv.row.body_fit_mm, fit_s = found[k]
        conv.row.seconds += fit_s
        out[k] = conv
    return [c for c in out if c is not None]


def convert_mesh(registrar: Registrar, target: ConvertTarget) -> Conversion:
    """Convert one mesh (a batch of one, :func:`convert_meshes`)."""
    return convert_meshes(registrar, [target])[0]


def read_results(path: str | Path) -> list[ConvertRow]:
    """Rows of a ``conversion.csv`` (empty list when absent)."""
    p = Path(path)
    if not p.is_file():
        return []
    with p.open(newline="") as fh:
        return [ConvertRow.from_record(rec) for rec in csv.DictReader(fh)]


def write_results(path: str | Path, rows: Sequence[ConvertRow]) -> None:
    """Write ``conversion.csv`` atomically (floats with 4 decimals, NaN as empty)."""
    from bodydata.fsutil import atomic_write_text

    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    wr.writeheader()
    for r in rows:
        rec = asdict(r)
        for k, v in rec.items():
            if isinstance(v, float):
                rec[k] = "" if not np.isfinite(v) else f"{v:.4f}"
        wr.writerow(rec)
    atomic_write_text(Path(path), buf.getvalue())


def worst_panels(rows: Sequence[ConvertRow], template: Template, n: int = 6) -> list[WorstPanel]:
    """The ``n`` done conversions with the largest mean converted -> input distance, read back from their files:
    each body turned onto the template (they share vertices; so every body stands along the template's axes
    whatever the input's frame), vertices carrying their distance to the input surface in mm (NaN on the mouth
    cavity, which no scan shows)."""
    from bodydata.mesh import read_mesh
    from bodydata.registration.metrics import point_to_mesh
    from bodydata.registration.register import similarity_from_points

    done = [r for r in rows if is_done(r.status) and r.out_path and Path(r.out_path).is_file()]
    done.sort(key=lambda r: -r.p2m_mean_mm)
    panels = []
    for r in done[:n]:
        conv = read_mesh(r.out_path).vertices
        src = read_mesh(r.source_path, allow_point_cloud=True)
        d = 1000.0 * point_to_mesh(conv, src.vertices, src.faces)
        c = conv - conv.mean(0)
        s, rot, _ = similarity_from_points(c, template.vertices - template.vertices.mean(0))
        d[~np.asarray(template.surface_mask, bool)] = np.nan
        panels.append(WorstPanel(f"{r.id[-24:]}\nmean {r.p2m_mean_mm:.1f} p95 {r.p2m_p95_mm:.1f}", s * c @ rot.T, d))
    return panels
