"""``bodydata fit --target-kind scan``'s work: fit a run's model to scan files in any connectivity and write fits, codes and a PMD CSV.

Inputs: a folder of scans (meshes or point clouds: .ply/.obj/.off), a text list, or a CSV with a ``path`` column and
optionally ``subject`` (or ``identity``) and ``source`` (the subject key as in every manifest:
:func:`bodydata.manifest.source_rows.subject_key`), ``landmarks_path`` and ``units`` columns.

Landmarks (the start): ``landmarks`` a folder (``<folder>/<scan stem>.csv`` per scan) or one CSV for every scan (scans
of one topology), else the input CSV's ``landmarks_path``; ``name,vertex_id`` files indexing the scan's points, as
the convert stage reads them. A scan without landmarks fails (one row) unless a start hook is given.

Subjects (``share_shape``): the input CSV's subject column, else the file stem's ``subject`` group of
``subject_regex`` (default: the stem up to its last ``_``, so ``anna_03.ply`` is subject ``anna``; a stem without
``_`` is its own subject).

Output layout (``OUT``)::

    OUT/meshes/<name>.ply      the fitted mesh in the scan's frame and units, the template's faces
    OUT/codes/<name>.npz       z (L,) float32 (shape, pose for a disentangled model), scale, rotation (3, 3),
                               translation (3,) metres: fitted = scale * decoded @ rotation.T + translation
    OUT/fit.csv                one row per scan (``SCAN_FIT_COLUMNS``), failures with their reason

A re-run keeps the scans whose row is done and whose files are present (with ``share_shape``, whole subjects only).
"""
from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bodydata.bodyfit.orient import UNITS
from bodydata.errors import BodydataError
from bodydata.evaluate.fit import FitError
from bodydata.evaluate.fit_files import FIT_FILES, FitRunReport, list_fit_inputs
from bodydata.evaluate.fit_scan import (
    ScanFitResult,
    ScanFitSettings,
    ScanFitter,
    ScanTarget,
    Similarity,
    StartFn,
    point_to_mesh_mm,
)
from bodydata.fsutil import atomic_path, atomic_write_csv
from bodydata.manifest.status import STATUS_DONE, STATUS_FAILED, is_done

__all__ = ["DEFAULT_SUBJECT_REGEX", "SCAN_FIT_COLUMNS", "UNITS_M", "ScanInput", "fit_scans", "list_scan_inputs"]

SCAN_FIT_COLUMNS = ["name", "path", "subject", "status", "pmd_mm", "pmd_wh_mm", "pmd_median_mm", "pmd_p95_mm",
                    "n_points", "hand_points", "overlap", "scale", "iterations", "seconds", "shared_shape", "reason"]
DEFAULT_SUBJECT_REGEX = r"^(?P<subject>.+)_[^_]*$"
#: metres per unit of a scan's coordinates (the body fit's units, one table)
UNITS_M = {name: factor for name, (factor, _) in UNITS.items()}


@dataclass
class ScanInput:
    """One scan file: name (its stem), path, subject key, landmark CSV (or None), units (a key of UNITS_M)."""

    name: str
    path: Path
    subject: str
    landmarks: Path | None
    units: str


def _subject_from_name(stem: str, pattern: re.Pattern) -> str:
    m = pattern.match(stem)
    return m.group("subject") if m and m.groupdict().get("subject") else stem


def list_scan_inputs(scans: str | os.PathLike, landmarks: str | os.PathLike | None = None,
                     subject_regex: str = DEFAULT_SUBJECT_REGEX, units: str = "m") -> list[ScanInput]:
    """The scans of a folder, text list or CSV (see the module docstring) with their subjects, landmark files and units.
    Raises BodydataError (one line) for a bad regex, unit or CSV."""
    from bodydata.manifest.source_rows import subject_key
    from bodydata.sources.folder import subject_pattern

    pattern = subject_pattern(subject_regex)
    if units not in UNITS_M:
        raise BodydataError(f"units {units!r}: expected one of {', '.join(UNITS_M)}")
    src = Path(scans)
    table: dict[Path, dict[str, str]] = {}
    if src.is_file() and src.suffix.lower() == ".csv":
        with open(src, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        mixed = len({r.get("source", "") for r in rows}) > 1
        for r in rows:
            if r.get("path"):
                p = Path(r["path"])
                table[p if p.is_absolute() else src.parent / p] = {**r, "_mixed": "1" if mixed else ""}
    paths = list_fit_inputs(src)
    lm = Path(landmarks) if landmarks else None
    if lm is not None and not lm.exists():
        raise BodydataError(f"{lm}: no such landmark folder or file")
    out = []
    for p in paths:
        row = table.get(p, {})
        subj = (row.get("subject") or row.get("identity") or "").strip()
        subj = subject_key(row.get("source", ""), subj, bool(row.get("_mixed"))) if subj else \
            _subject_from_name(p.stem, pattern)
        u = (row.get("units") or units).strip()
        if u not in UNITS_M:
            raise BodydataError(f"{src}: {p.name} has units {u!r}, expected one of {', '.join(UNITS_M)}")
        if lm is not None:
            lp = lm / f"{p.stem}.csv" if lm.is_dir() else lm
        elif row.get("landmarks_path"):
            lp = Path(row["landmarks_path"])
            lp = lp if lp.is_absolute() else src.parent / lp
        else:
            lp = None
        out.append(ScanInput(p.stem, p, subj, lp if lp is None or lp.is_file() else None, u))
    return out


def _read_target(inp: ScanInput, normal_neighbours: int) -> ScanTarget:
    from bodydata.mesh.io import read_points
    from bodydata.templates.landmarks import read_landmarks_csv

    mesh = read_points(inp.path)
    lm = read_landmarks_csv(inp.landmarks, n_vertices=len(mesh.vertices)) if inp.landmarks else None
    return ScanTarget(str(inp.path), mesh.vertices * UNITS_M[inp.units], mesh.faces, lm, normal_neighbours)


def _save_codes(path: Path, res: ScanFitResult, i: int) -> None:
    arrays = {"z": res.z[i], "scale": np.float64(res.scale[i]), "rotation": res.rotation[i],
              "translation": res.translation[i]}
    if res.shape is not None:
        arrays.update(shape=res.shape[i], pose=res.pose[i])
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def _failed(inp: ScanInput, reason: str) -> dict[str, str]:
    return {"name": inp.name, "path": str(inp.path), "subject": inp.subject, "status": STATUS_FAILED,
            "reason": " ".join(reason.split())}


def _reusable(out: Path, inputs: list[ScanInput], share_shape: bool) -> dict[str, dict[str, str]]:
    """Rows of an earlier run in ``out`` to keep: done, the same path, fitted with the same ``share_shape``, files
    present (with ``share_shape``: only subjects whose every scan is kept, since their shape code is fitted jointly)."""
    table = out / FIT_FILES["table"]
    if not table.is_file():
        return {}
    with open(table, newline="", encoding="utf-8") as fh:
        prev = {r["name"]: r for r in csv.DictReader(fh)}
    keep = {}
    for i in inputs:
        r = prev.get(i.name)
        if (r and is_done(r.get("status")) and r.get("path") == str(i.path)
                and bool(r.get("shared_shape")) == share_shape  # fitted the same way
                and (out / FIT_FILES["meshes"] / f"{i.name}.ply").is_file()
                and (out / FIT_FILES["codes"] / f"{i.name}.npz").is_file()):
            keep[i.name] = r
    if share_shape:
        whole = {i.subject for i in inputs} - {i.subject for i in inputs if i.name not in keep}
        keep = {k: r for k, r in keep.items() if r.get("subject") in whole}
    return keep


def fit_scans(run: str | os.PathLike, scans: str | os.PathLike, out: str | os.PathLike,
              settings: ScanFitSettings = ScanFitSettings(), landmarks: str | os.PathLike | None = None,
              share_shape: bool = False, subject_regex: str = DEFAULT_SUBJECT_REGEX, units: str = "m",
              start: StartFn | None = None, batch_size: int = 8, device: str | None = None, checkpoint: str = "last",
              progress: Callable[[int, int], None] | None = None) -> FitRunReport:
    """Fit every scan of ``scans`` with the model of ``run`` and write ``out`` (layout in the module docstring).

    share_shape : scans of one subject share e_s; else each scan has its own. start : a start hook (default: the
    scans' landmarks). batch_size : scans fitted together (whole subjects with ``share_shape``; speed only: the
    scans of a batch do not interact unless they share a shape). A scan that cannot be read or started is a failed row; the others go on. A re-run keeps the done
    rows whose files are present (see :func:`_reusable`).
    Raises BodydataError when it cannot start (no run, no scans, bad options). progress : called (done, total).
    """
    from bodydata.mesh.io import write_mesh
    from bodydata.model import load

    inputs = list_scan_inputs(scans, landmarks, subject_regex, units)
    model = load(run, checkpoint=checkpoint, device=device)
    if share_shape and not model.disentangled:
        raise FitError(f"{run}: {model.net.arch} has one latent vector, so --share-shape has no shape code to share")
    fitter = ScanFitter(model, settings, start)
    tpl = fitter.template
    out = Path(out)
    report = FitRunReport(out)
    rows: dict[str, dict[str, str]] = {}
    old = _reusable(out, inputs, share_shape)
    ready: dict[str, list[tuple[ScanInput, ScanTarget, Similarity]]] = {}
    seen: set[str] = set()
    for k, inp in enumerate(inputs):
        if inp.name in seen:  # rows are keyed by name; the second file of a name is reported, not dropped
            rows[f"{inp.name}#{k}"] = _failed(inp, f"{inp.path}: another input has the same name {inp.name!r}")
            continue
        seen.add(inp.name)
        if inp.name in old:
            rows[inp.name] = old[inp.name]
            report.n_skipped += 1
            continue
        try:
            tg = _read_target(inp, settings.normal_neighbours)
            sim = fitter.start_similarity(tg)
        except BodydataError as exc:
            rows[inp.name] = _failed(inp, str(exc))
            continue
        ready.setdefault(inp.subject if share_shape else inp.name, []).append((inp, tg, sim))
    table = out / FIT_FILES["table"]
    total, done = sum(len(v) for v in ready.values()), 0
    batches: list[list[tuple[int, ScanInput, ScanTarget, Similarity]]] = [[]]
    for g, members in enumerate(ready.values()):
        if batches[-1] and len(batches[-1]) + len(members) > batch_size:
            batches.append([])
        batches[-1] += [(g, *m) for m in members]
    for batch in (b for b in batches if b):
        grp = [m[1:] for m in batch]
        try:
            res = fitter.fit([tg for _, tg, _ in grp], groups=[m[0] for m in batch], starts=[st for _, _, st in grp])
        except BodydataError as exc:
            for inp, _, _ in grp:
                rows[inp.name] = _failed(inp, str(exc))
            continue
        for i, (inp, tg, _) in enumerate(grp):
            unit = UNITS_M[inp.units]
            write_mesh(out / FIT_FILES["meshes"] / f"{inp.name}.ply", res.vertices[i] / unit, tpl.faces)
            _save_codes(out / FIT_FILES["codes"] / f"{inp.name}.npz", res, i)
            pd = point_to_mesh_mm(tg.points, res.vertices[i], tpl.faces, tpl.part_labels, tpl.part_names)
            rows[inp.name] = {"name": inp.name, "path": str(inp.path), "subject": inp.subject, "status": STATUS_DONE,
                              **{k: f"{v:.4f}" for k, v in pd.summary().items()},
                              "n_points": str(len(tg.points)), "hand_points": str(int(pd.on_hand.sum())),
                              "overlap": f"{res.overlap[i]:.3f}", "scale": f"{res.scale[i]:.5f}",
                              "iterations": str(int(res.iterations[i])), "seconds": f"{res.seconds[i]:.3f}",
                              "shared_shape": str(int((res.groups == res.groups[i]).sum())) if share_shape else "",
                              "reason": ""}
        atomic_write_csv(table, SCAN_FIT_COLUMNS, list(rows.values()))  # an interrupted run keeps what it finished
        done += len(grp)
        if progress:
            progress(done, total)
    report.rows = list(rows.values())
    report.n_done = sum(is_done(r["status"]) for r in report.rows)
    report.n_failed = len(report.rows) - report.n_done
    atomic_write_csv(table, SCAN_FIT_COLUMNS, report.rows)
    return report
