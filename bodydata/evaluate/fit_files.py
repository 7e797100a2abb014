"""``bodydata fit``'s work: fit a run's model to mesh files (Eq. 15) and write fitted meshes, codes and a CSV.

Output layout (``OUT``)::

    OUT/meshes/<name>.ply      the fitted mesh in the input's frame (R p + t), the template's faces
    OUT/codes/<name>.npz       z (L,) float32 (and shape, pose for a disentangled model), rotation (3, 3), translation (3,)
    OUT/fit.csv                one row per input mesh (``FIT_COLUMNS``), failures included with their reason

A mesh that cannot be read or has another connectivity is a ``failed`` row; the others go on. A re-run skips
the ``done`` rows whose files are present. ``<name>`` is the input file's stem.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from bodydata.errors import BodydataError
from bodydata.evaluate.fit import FitError, FitResult, FitSettings, MeshFitter
from bodydata.evaluate.metrics import vertex_errors_mm
from bodydata.fsutil import atomic_path, atomic_write_csv
from bodydata.manifest.status import STATUS_DONE, STATUS_FAILED, is_done

__all__ = ["FIT_FILES", "FIT_COLUMNS", "FitRunReport", "list_fit_inputs", "resolve_markers", "fit_meshes"]

FIT_FILES = {"meshes": "meshes", "codes": "codes", "table": "fit.csv"}
FIT_COLUMNS = ["name", "path", "status", "med_mm", "marker_mm", "start_med_mm", "iterations", "seconds", "markers",
               "alignment", "reason"]


@dataclass
class FitRunReport:
    """What :func:`fit_meshes` did: out folder, the rows of fit.csv, counts (``skipped``: done before)."""

    out: Path
    rows: list[dict[str, str]] = field(default_factory=list)
    n_done: int = 0
    n_failed: int = 0
    n_skipped: int = 0


def list_fit_inputs(meshes: str | os.PathLike) -> list[Path]:
    """Mesh files of a folder, a text list (one path a line) or a CSV with a ``path`` column (paths relative to it)."""
    from bodydata.features.files import list_meshes

    src = Path(meshes)
    if src.is_file() and src.suffix.lower() == ".csv":
        with open(src, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if "path" not in (reader.fieldnames or []):
                raise BodydataError(f"{src}: a mesh list CSV needs a 'path' column")
            paths = [Path(r["path"]) for r in reader if r.get("path")]
        paths = [p if p.is_absolute() else src.parent / p for p in paths]
        if not paths:
            raise BodydataError(f"{src}: lists no meshes")
        return paths
    return list_meshes(src)


def resolve_markers(spec: str | None, template) -> np.ndarray | None:
    """Marker vertices: None (every vertex), ``"landmarks"`` (the template's landmark set) or a landmark CSV path."""
    if not spec:
        return None
    if spec == "landmarks":
        if not template.landmarks:
            raise FitError(f"template {template.name} has no landmarks; give a landmark CSV")
        return np.array(sorted(set(template.landmarks.values())), np.int64)
    from bodydata.templates.landmarks import read_landmarks_csv

    return np.array(sorted(set(read_landmarks_csv(spec, n_vertices=template.n_vertices).values())), np.int64)


def _read_rows(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["name"]: r for r in csv.DictReader(fh)}


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    atomic_write_csv(path, FIT_COLUMNS, rows)


def _save_codes(path: Path, res: FitResult, i: int) -> None:
    arrays = {"z": res.z[i], "rotation": res.rotation[i], "translation": res.translation[i]}
    if res.shape is not None:
        arrays.update(shape=res.shape[i], pose=res.pose[i])
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def fit_meshes(run: str | os.PathLike, meshes: str | os.PathLike, out: str | os.PathLike,
               settings: FitSettings = FitSettings(), batch_size: int = 8, device: str | None = None,
               markers: str | None = None, checkpoint: str = "last",
               progress: Callable[[int, int], None] | None = None) -> FitRunReport:
    """Fit every mesh of ``meshes`` (see :func:`list_fit_inputs`) with the model of ``run``; write ``out``.

    markers : None, ``"landmarks"`` or a landmark CSV (sparse-marker fit; ``marker_mm`` is then the mean distance
    on the markers, ``med_mm`` on all vertices). batch_size, device : speed only. progress : called (done, total).
    Raises RunError / BodydataError when it cannot start (no run, no meshes).
    """
    from bodydata.mesh import read_mesh, write_mesh
    from bodydata.model import load
    from bodydata.templates.template import load_template

    paths = list_fit_inputs(meshes)
    model = load(run, checkpoint=checkpoint, device=device)
    if not model.template:
        raise FitError(f"{run}: the run records no template, so its meshes cannot be fitted")
    tpl = load_template(model.template)
    marker_ids = resolve_markers(markers, tpl)
    fitter = MeshFitter(model, settings, marker_ids)
    out = Path(out)
    table = out / FIT_FILES["table"]
    old = _read_rows(table)
    report = FitRunReport(out)
    rows: dict[str, dict[str, str]] = {}
    todo: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for k, p in enumerate(paths):
        name = p.stem
        if name in seen:  # rows are keyed by name; the second file of a name is reported, not silently dropped
            rows[f"{name}#{k}"] = _failed(name, p, f"{p}: another input has the same name {name!r}")
            continue
        seen.add(name)
        prev = old.get(name)
        if (prev and is_done(prev.get("status")) and (out / FIT_FILES["meshes"] / f"{name}.ply").is_file()
                and (out / FIT_FILES["codes"] / f"{name}.npz").is_file()):
            rows[name] = prev
            report.n_skipped += 1
            continue
        todo.append((name, p))
    good: list[tuple[str, Path, np.ndarray]] = []
    for name, p in todo:
        try:
            mesh = read_mesh(p, expected_vertices=tpl.n_vertices, expected_faces=tpl.faces)
            good.append((name, p, mesh.vertices))
        except BodydataError as exc:
            rows[name] = _failed(name, p, str(exc))
    n_markers = "" if marker_ids is None else str(len(marker_ids))
    for b0 in range(0, len(good), max(1, batch_size)):
        batch = good[b0:b0 + batch_size]
        q = np.stack([v for _, _, v in batch])
        try:
            res = fitter.fit(q)
        except BodydataError as exc:
            for name, p, _ in batch:
                rows[name] = _failed(name, p, str(exc))
            continue
        for i, (name, p, _) in enumerate(batch):
            write_mesh(out / FIT_FILES["meshes"] / f"{name}.ply", res.vertices[i], tpl.faces)
            _save_codes(out / FIT_FILES["codes"] / f"{name}.npz", res, i)
            marker = ""
            if marker_ids is not None:
                marker = f"{vertex_errors_mm(res.vertices[i][marker_ids], q[i][marker_ids]).mean():.4f}"
            rows[name] = {"name": name, "path": str(p), "status": STATUS_DONE, "med_mm": f"{res.med_mm[i]:.4f}",
                          "marker_mm": marker, "start_med_mm": f"{res.start_med_mm[i]:.4f}",
                          "iterations": str(int(res.iterations[i])), "seconds": f"{res.seconds[i]:.3f}",
                          "markers": n_markers, "alignment": settings.alignment, "reason": ""}
        _write_rows(table, list(rows.values()))  # after every batch: an interrupted fit keeps what it finished
        if progress:
            progress(min(b0 + batch_size, len(good)), len(good))
    report.rows = list(rows.values())
    report.n_done = sum(is_done(r["status"]) for r in report.rows)
    report.n_failed = len(report.rows) - report.n_done
    _write_rows(table, report.rows)
    return report


def _failed(name: str, path: Path, reason: str) -> dict[str, str]:
    return {"name": name, "path": str(path), "status": STATUS_FAILED, "reason": " ".join(reason.split())}
