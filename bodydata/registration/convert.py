"""Connectivity conversion of a source's meshes: one mesh -> converted mesh + a result row; a driver over a
manifest (failures recorded, atomic writes, finished rows skipped) and a PNG of the worst conversions.

Output folder layout::

    OUT/meshes/<id>.ply       the converted mesh (template connectivity, the input's frame and units)
    OUT/conversion.csv        one row per input (:data:`COLUMNS`), rewritten atomically after each mesh
    OUT/worst.png             the worst conversions, vertices coloured by distance to the input surface

Distances are reported as ``*_mm`` = 1000 x the input's length unit (millimetres for metric inputs; for
inputs normalised upstream, such as FAUST_r, thousandths of the input's unit -- the ``units`` column says).
"""
from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from bodydata.errors import BodydataError

__all__ = ["COLUMNS", "ConvertRow", "convert_one", "convert_rows", "read_results", "source_landmarks", "worst_png"]


@dataclass
class ConvertRow:
    """One conversion: ids, where the result is, status ('ok' | 'failed'), reason, and the metrics."""

    id: str
    source_path: str
    out_path: str = ""
    units: str = "m"
    status: str = "failed"
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


COLUMNS = [f.name for f in fields(ConvertRow)]


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "mesh"


def source_landmarks(row, n_vertices: int) -> dict[str, int] | None:
    """Landmarks of a manifest row's mesh: its ``landmarks_path`` CSV, else the shipped CSV of its topology
    (smpl_6890, scape_12500, anny_*), else None."""
    from bodydata.templates.landmarks import (
        TOPOLOGIES,
        load_landmarks,
        read_landmarks_csv,
    )

    path = getattr(row, "landmarks_path", "") or ""
    if path:
        return read_landmarks_csv(path, n_vertices)
    topo = getattr(row, "topology", "") or ""
    if topo in TOPOLOGIES and TOPOLOGIES[topo] == n_vertices:
        return load_landmarks(topo)
    return None


def convert_one(registrar, mesh_id: str, vertices: np.ndarray, faces: np.ndarray, landmarks: dict[str, int] | None,
                out_path: str | Path | None = None, source_path: str = "", units: str = "m") -> tuple[ConvertRow, object]:
    """Register the template onto one mesh (vertices (m, 3), faces (k, 3)); writes the converted mesh to
    ``out_path`` when given and ok. Returns (row, RegistrationResult or None); never raises for a bad fit."""
    row = ConvertRow(id=mesh_id, source_path=str(source_path), units=units)
    t0 = time.perf_counter()
    if not landmarks:
        row.reason = "no landmarks: none given for this mesh (landmarks_path or a topology with shipped landmarks)"
        row.seconds = time.perf_counter() - t0
        return row, None
    res = registrar.register(vertices, faces, landmarks)
    return _fill_row(registrar, row, res, vertices, faces, landmarks, out_path), res


def _fill_row(registrar, row: ConvertRow, res, vertices: np.ndarray, faces: np.ndarray, landmarks: dict[str, int],
              out_path: str | Path | None) -> ConvertRow:
    """``row`` completed from a RegistrationResult: status, metrics (distances both ways); the mesh written when ok."""
    from bodydata.mesh import write_mesh
    from bodydata.mesh.closest import point_to_mesh
    from bodydata.registration.metrics import SurfaceDistances

    ignored = registrar.config.ignore_landmarks
    row.n_landmarks = len([k for k in registrar.template.landmarks if k in landmarks and k not in ignored])
    row.status, row.reason, row.iterations, row.seconds = res.status, res.reason, res.iterations, res.seconds
    if np.all(np.isfinite(res.vertices)):
        row.scale = res.scale
        row.landmark_error_mm = 1000.0 * res.landmark_error
        # template vertices no scanner sees (mouth cavity) are left out of converted -> input
        keep = np.asarray(registrar.template.surface_mask, bool)
        sd = SurfaceDistances(point_to_mesh(res.vertices[keep], vertices, faces),
                              point_to_mesh(vertices, res.vertices, registrar.template.faces)).summary()
        for k, v in sd.items():
            setattr(row, k, v)
    if res.status == "ok" and out_path is not None:
        write_mesh(out_path, res.vertices, registrar.template.faces)
        row.out_path = str(out_path)
    return row


def read_results(path: str | Path) -> list[ConvertRow]:
    """Rows of a ``conversion.csv`` (empty list when absent)."""
    p = Path(path)
    if not p.is_file():
        return []
    out = []
    with p.open(newline="") as fh:
        for rec in csv.DictReader(fh):
            kw = {}
            for f in fields(ConvertRow):
                v = rec.get(f.name, "")
                kw[f.name] = (int(v) if v else 0) if f.type in ("int", int) else (
                    float(v) if v else float("nan")) if f.type in ("float", float) else v
            out.append(ConvertRow(**kw))
    return out


def _write_results(path: Path, rows: list[ConvertRow]) -> None:
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
    atomic_write_text(path, buf.getvalue())


def _failure_row(row, exc: Exception) -> ConvertRow:
    units = getattr(row, "units", "m") or "m"
    if isinstance(exc, BodydataError):
        return ConvertRow(id=row.id, source_path=str(row.path), units=units, reason=str(exc))
    return ConvertRow(id=row.id, source_path=str(row.path), units=units,
                      reason=f"{row.path}: {type(exc).__name__}: {exc}")


def _convert_pending(registrar, pending: list) -> list[ConvertRow]:
    """Rows for ``pending`` = [(manifest row, MeshData, landmarks, out path, finished row or None)]: the meshes
    without a finished row are registered as one batch (:meth:`~bodydata.registration.register.Registrar.
    register_batch`); one ConvertRow per entry, in order."""
    todo = [k for k, entry in enumerate(pending) if entry[4] is None]
    out = [entry[4] for entry in pending]
    try:
        results = registrar.register_batch([(pending[k][1].vertices, pending[k][1].faces, pending[k][2])
                                            for k in todo]) if todo else []
    except Exception as exc:  # noqa: BLE001 - one bad batch must not end a run of thousands
        results = [exc] * len(todo)
    for k, res in zip(todo, results):
        row, mesh, lm, dst, _ = pending[k]
        base = ConvertRow(id=row.id, source_path=str(row.path), units=getattr(row, "units", "m") or "m")
        try:
            if isinstance(res, Exception):
                raise res
            out[k] = _fill_row(registrar, base, res, mesh.vertices, mesh.faces, lm, dst)
        except Exception as exc:  # noqa: BLE001 - as above, per mesh
            out[k] = _failure_row(row, exc)
    return out


def convert_rows(registrar, rows, out_dir: str | Path, landmarks_for=None, skip_done: bool = True,
                 progress: bool = True, limit: int | None = None, png: bool = True,
                 batch_size: int = 1) -> list[ConvertRow]:
    """Convert manifest rows (objects with id, path, topology, units, landmarks_path) into ``out_dir``.

    landmarks_for : optional callable(row, vertices) -> {name: vertex id} overriding :func:`source_landmarks`.
    Rows already 'ok' in ``out_dir/conversion.csv`` with their mesh present are skipped (``skip_done``).
    A mesh that cannot be read or registered becomes a 'failed' row with the reason; the batch goes on.
    batch_size : register up to this many pending meshes at once (``Registrar.register_batch``: one batched
    prior evaluation per L-BFGS step, each body's result as if alone; memory grows with it, see
    ``benchmarks/bench_convert_batch.py``); ``conversion.csv`` is rewritten after every batch.
    """
    from tqdm import tqdm

    from bodydata.mesh import read_mesh

    if int(batch_size) < 1:
        raise BodydataError(f"batch_size must be >= 1, got {batch_size}")
    out = Path(out_dir)
    (out / "meshes").mkdir(parents=True, exist_ok=True)
    table = out / "conversion.csv"
    results = {r.id: r for r in read_results(table)}
    todo = list(rows)[: limit if limit is not None else None]
    pending: list = []
    bar = tqdm(total=len(todo), desc="convert", unit="mesh", disable=not progress)

    def flush() -> None:
        for res_row in _convert_pending(registrar, pending):
            results[res_row.id] = res_row
        bar.update(len(pending))
        pending.clear()
        _write_results(table, list(results.values()))

    for row in todo:
        dst = out / "meshes" / f"{_safe_id(row.id)}.ply"
        prev = results.get(row.id)
        if skip_done and prev is not None and prev.status == "ok" and dst.is_file():
            bar.update(1)
            continue
        try:
            mesh = read_mesh(row.path)
            lm = landmarks_for(row, mesh.vertices) if landmarks_for else source_landmarks(row, len(mesh.vertices))
        except Exception as exc:  # noqa: BLE001 - one bad mesh must not end a batch of thousands
            pending.append((row, None, None, dst, _failure_row(row, exc)))
        else:
            ready = None if lm else convert_one(registrar, row.id, mesh.vertices, mesh.faces, lm, dst, row.path,
                                                getattr(row, "units", "m") or "m")[0]
            pending.append((row, mesh, lm, dst, ready))
        # rows keep their input order in the table; a finished (failed) row waits for the batch before it
        n_register = sum(entry[4] is None for entry in pending)
        if n_register == 0 or n_register >= batch_size:
            flush()
    if pending:
        flush()
    bar.close()
    final = list(results.values())
    if png and any(r.status == "ok" for r in final):
        try:
            worst_png(final, registrar.template.faces, out / "worst.png", template=registrar.template)
        except (BodydataError, OSError) as exc:  # a picture never fails the batch
            print(f"warning: worst.png not written: {exc}")
    return final


def worst_png(rows: list[ConvertRow], template_faces: np.ndarray, path: str | Path, n: int = 6,
              clip_mm: float = 10.0, template=None) -> Path:
    """Front and side views of the ``n`` conversions with the largest mean converted->input distance, vertices
    coloured by their distance to the input surface (0 .. ``clip_mm``); only vertices facing the viewer are drawn.

    With ``template`` (a :class:`~bodydata.templates.template.Template`) each body is first moved rigidly onto the
    template (they share vertices) and drawn along the template's up/front axes, so every body stands upright
    whatever the input's frame; without it the two axes of largest spread are used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bodydata.mesh import read_mesh
    from bodydata.mesh.normals import vertex_normals
    from bodydata.mesh.closest import point_to_mesh
    from bodydata.viz.png import save_png

    ok = [r for r in rows if r.status == "ok" and r.out_path and Path(r.out_path).is_file()]
    ok.sort(key=lambda r: -r.p2m_mean_mm)
    ok = ok[:n]
    cols = max(len(ok), 1)
    fig, axes = plt.subplots(2, cols, figsize=(2.6 * cols, 9), squeeze=False)
    sc = None
    for k, r in enumerate(ok):
        conv = read_mesh(r.out_path).vertices
        src = read_mesh(r.source_path)
        d = 1000.0 * point_to_mesh(conv, src.vertices, src.faces)
        c = conv - conv.mean(0)
        if template is not None:
            from bodydata.registration.register import similarity_from_points
            from bodydata.templates.template import axis_vector

            s, rot, _ = similarity_from_points(c, template.vertices - template.vertices.mean(0))
            c = s * c @ rot.T
            d[~template.surface_mask] = np.nan  # the mouth cavity has no counterpart in a scan: not coloured
            up, front = axis_vector(template.up_axis), axis_vector(template.front_axis)
        else:
            _, _, vt = np.linalg.svd(c, full_matrices=False)
            up, front = vt[0], vt[2]
        left = np.cross(up, front)
        nrm = vertex_normals(c, template_faces)
        for row, view in enumerate((front, -left)):  # from the front, then from the subject's right
            side = np.cross(up, view)
            vis = nrm @ view > 0
            ax = axes[row, k]
            sc = ax.scatter(-(c[vis] @ side), c[vis] @ up, c=d[vis], s=0.6, cmap="inferno", vmin=0, vmax=clip_mm)
            ax.set_aspect("equal")
            ax.set_axis_off()
        axes[0, k].set_title(f"{r.id[-24:]}\nmean {r.p2m_mean_mm:.1f} p95 {r.p2m_p95_mm:.1f}", fontsize=7)
    if not ok:
        for ax in axes.ravel():
            ax.set_axis_off()
    if sc is not None:
        fig.colorbar(sc, ax=axes.ravel().tolist(), shrink=0.5, label="distance to input (x1000 units)")
    return save_png(fig, path, dpi=110)
