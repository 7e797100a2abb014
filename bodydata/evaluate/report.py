"""The evaluation's tables and files: per-mesh and summary CSVs, one JSON, figures and a report.md for readers.

Files written into ``OUT`` (``REPORT_FILES``)::

    OUT/meshes.csv          one row per run x test mesh: encoder-only and Eq. 15 MED (mm), fit iterations, seconds
    OUT/summary.csv         Table 2: per run, test set and codes (encoder / fit): count, mean, median, std, p95, max (mm)
    OUT/disentangle.csv     per run: (a) neutral from pose and (b) pose transfer MED statistics, (c) shape stability
    OUT/sparse.csv          Table 5: per run and test set, the fit from K marker vertices only: MED of the whole mesh
                            (count, mean, median, std, p95, max mm) and the mean marker error (mm)
    OUT/report.json         all of the above with the data, split, epochs and alignment of every table
    OUT/report.md           the same as prose and tables, with the figures
    OUT/ced_<set>.png       CED curves of every run on one test set (the fit's per-vertex errors)
    OUT/error_<run>_<set>_<median|worst>_<front|back>.png   error maps of a run's median and worst test mesh
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bodydata.evaluate.fit import SOLVERS
from bodydata.evaluate.metrics import ced_curve, summarize
from bodydata.fsutil import atomic_write_csv, atomic_write_text

if TYPE_CHECKING:
    from bodydata.evaluate.evaluation import Evaluation

__all__ = ["REPORT_FILES", "SUMMARY_COLUMNS", "SPARSE_COLUMNS", "summary_rows", "disentangle_rows", "sparse_rows",
           "write_report"]

REPORT_FILES = {"meshes": "meshes.csv", "summary": "summary.csv", "disentangle": "disentangle.csv",
                "sparse": "sparse.csv", "json": "report.json", "markdown": "report.md"}
STATS = ["count", "mean", "median", "std", "p95", "max"]
SUMMARY_COLUMNS = ["run", "arch", "epochs", "data", "split", "set", "codes", "alignment", *STATS]
DISENTANGLE_COLUMNS = ["run", "arch", "epochs", "data", "split", "test", "alignment", *STATS, "within", "between",
                       "ratio", "note"]
SPARSE_COLUMNS = ["run", "arch", "epochs", "data", "split", "set", "markers", "k", "alignment", *STATS, "marker_mm"]
MESH_COLUMNS = ["run", "set", "id", "encoder_mm", "fit_mm", "iterations", "seconds"]
#: what each codes column means, for the report
CODES = {"encoder": "encoder's posterior means, decoded, Kabsch-aligned", "fit": "Eq. 15 fit from the encoder's codes"}
CED_MAX_MM = 50.0


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4f}"
    return "" if v is None else str(v)


def _no_nan(v):
    """JSON has no NaN: undefined numbers become null."""
    if isinstance(v, dict):
        return {k: _no_nan(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_no_nan(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def _csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    return atomic_write_csv(path, columns, ({k: _fmt(v) for k, v in r.items()} for r in rows))


def _base(ev: "Evaluation", info: dict) -> dict:
    return {"run": info.get("run"), "arch": info.get("arch", ""), "epochs": info.get("epochs"),
            "data": ev.dataset_name, "split": ev.split}


def summary_rows(ev: "Evaluation") -> list[dict]:
    """Table 2 rows: every run x test set x codes (encoder, fit), with the summary statistics in mm."""
    rows = []
    for r in ev.runs:
        for role, rec in r.reconstructions.items():
            for codes, values in (("encoder", rec.encoder_mm), ("fit", rec.fit_mm)):
                if not np.isfinite(values).any():  # no encoder (the body-model row)
                    continue
                rows.append({**_base(ev, r.info), "set": role, "codes": codes, "alignment": ev.settings.alignment,
                             **summarize(values).as_dict()})
    return rows


def disentangle_rows(ev: "Evaluation") -> list[dict]:
    """(a), (b), (c) per run; single-latent runs get one row saying the test does not apply."""
    rows = []
    for r in ev.runs:
        if r.error or not r.reconstructions:
            continue
        base = {**_base(ev, r.info), "alignment": "rigid"}
        if r.neutral_from_pose is None:
            rows.append({**base, "test": "all", "note": "one latent vector: no shape/pose split to test"})
            continue
        rows.append({**base, "test": "neutral_from_pose", **summarize(r.neutral_from_pose.med_mm).as_dict()})
        if r.pose_transfer is not None:
            pt = r.pose_transfer
            rows.append({**base, "test": "pose_transfer", **summarize(pt.med_mm).as_dict(),
                         "note": f"{len(pt.skipped)} pairs skipped" if pt.skipped else ""})
        st = r.shape_stability
        if st is not None:
            rows.append({**base, "test": "shape_stability", "alignment": "", "count": st.n_meshes,
                         "within": st.within, "between": st.between, "ratio": st.ratio,
                         "note": f"{st.n_identities} identities"})
    return rows


def sparse_rows(ev: "Evaluation") -> list[dict]:
    """Table 5 rows: every run x test set fitted from its markers alone; MED statistics of the whole mesh (mm) and the
    mean marker error (mm)."""
    rows = []
    for r in ev.runs:
        for role, sp in r.sparse.items():
            rows.append({**_base(ev, r.info), "set": role, "markers": sp.markers, "k": sp.k,
                         "alignment": ev.settings.alignment, **summarize(sp.med_mm).as_dict(),
                         "marker_mm": float(np.mean(sp.marker_mm))})
    return rows


def _mesh_rows(ev: "Evaluation", meshes: dict) -> list[dict]:
    rows = []
    for r in ev.runs:
        for role, rec in r.reconstructions.items():
            for i, mid in enumerate(meshes[role].ids):
                rows.append({"run": r.info.get("run"), "set": role, "id": mid, "encoder_mm": float(rec.encoder_mm[i]),
                             "fit_mm": float(rec.fit_mm[i]), "iterations": int(rec.iterations[i]),
                             "seconds": float(rec.seconds[i])})
    return rows


def _figures(ev: "Evaluation", meshes: dict, out: Path) -> list[Path]:
    from bodydata.templates.template import load_template
    from bodydata.viz.ced import ced_png
    from bodydata.viz.error_map import error_map_png

    files = []
    thresholds = np.linspace(0.0, CED_MAX_MM, 201)
    ok = [r for r in ev.runs if r.reconstructions]
    for role in meshes:
        curves = {r.info["run"]: ced_curve(r.reconstructions[role].fit_vertex_mm, thresholds) for r in ok}
        files.append(ced_png(out / f"ced_{role}.png", thresholds, curves,
                             f"CED, {ev.dataset_name} {ev.split} {role} set, Eq. 15 fit ({ev.settings.alignment})"))
    for r in ok:
        faces = load_template(r.info["template"]).faces
        for role, rec in r.reconstructions.items():
            order = np.argsort(rec.fit_mm)
            picks = {"median": int(order[len(order) // 2]), "worst": int(order[-1])}
            vmax = float(np.percentile(rec.fit_vertex_mm, 99))
            for (which, i), side in ((p, side) for p in picks.items() for side in ("front", "back")):
                files.append(error_map_png(
                    out / f"error_{r.info['run']}_{role}_{which}_{side}.png", faces, meshes[role].vertices[i],
                    rec.fitted[i], rec.fit_vertex_mm[i], f"{r.info['run']}: {which} {role} test mesh "
                    f"{meshes[role].ids[i]}, MED {rec.fit_mm[i]:.2f} mm", vmax_mm=vmax, back=side == "back"))
    return files


def _jacobian_text(s) -> str:
    """How the LM fit's Jacobians were made (it changes the fit), '' for Adam."""
    if s.solver != "lm":
        return ""
    if s.jacobian_every == 1:
        return ", an exact Jacobian at every step"
    return f", an exact Jacobian every {s.jacobian_every} kept steps and Broyden updates between"


def _md_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _markdown(ev: "Evaluation", summary: list[dict], dis: list[dict], sparse: list[dict], figures: list[Path]) -> str:
    s = ev.settings
    parts = [
        f"# Evaluation on {ev.dataset_name} ({ev.split} split)",
        "",
        f"Dataset: `{ev.dataset}`. Every number is a MED: the mean Euclidean distance between corresponding vertices, "
        "in millimetres, averaged over the vertices of one mesh; the tables summarise it over the test meshes "
        "(std is the population standard deviation, p95 the 95th percentile).",
        "",
        "## Runs",
        "",
        _md_table([{**r.info, "status": r.error or "evaluated"} for r in ev.runs],
                  ["run", "arch", "epochs", "checkpoint", "status"]),
        "",
        "## Reconstruction of the test meshes (Table 2)",
        "",
        "Codes `encoder`: " + CODES["encoder"] + ". Codes `fit`: " + CODES["fit"] + f" ({SOLVERS[s.solver]}, at most {s.steps} "
        f"steps{_jacobian_text(s)}; λ = {s.vertex_weight:g} per mm², i.e. {s.vertex_weight * 1e6:g} per m², λ_β = {s.shape_weight:g}, "
        f"λ_θ = {s.pose_weight:g}). Alignment `{s.alignment}`: the error is measured after the fit's own rotation and "
        "translation. Set `neutral`: the identities' neutral bodies; `pose`: their posed bodies.",
        "",
        _md_table(summary, SUMMARY_COLUMNS),
        "",
        "## Disentanglement against ground truth",
        "",
        "`neutral_from_pose`: the shape code fitted to one posed test body, decoded with a zero pose code, against the "
        "identity's true neutral body. `pose_transfer`: the shape code of identity A's neutral body with the pose code "
        "of a posed body of identity B, against the generator's body of A in B's exact joint angles. Both after a "
        "rigid (Kabsch) alignment. `shape_stability`: the spread (RMS, latent units) of the shape codes of one "
        "identity's test bodies (`within`) against the spread between identities (`between`); a small ratio means the "
        "shape code does not change with pose. The `anny-body-model` row is anny itself fitted to the same meshes "
        "(vertex correspondence known; no encoder): its phenotype stands for the shape code and its joint angles for "
        "the pose code.",
        "",
        _md_table(dis, DISENTANGLE_COLUMNS),
        "",
    ]
    if sparse:
        parts += [
            "## Fitting from sparse markers (Table 5)",
            "",
            f"Each test mesh fitted again by Eq. 15 from K marker vertices only (set `{ev.markers}`), starting from "
            "zero codes and the markers' Kabsch alignment (a marker set gives the encoder nothing). The statistics are "
            "of the MED between the whole fitted mesh and the whole true mesh; `marker_mm` is the mean distance on the "
            "markers themselves. The paper reports PMD to DFaust scans from 39 markers; here the truth is the test "
            "mesh, vertex for vertex.",
            "",
            _md_table(sparse, SPARSE_COLUMNS),
            "",
        ]
    if figures:
        parts += ["## Figures", "", "CED curves: the percentage of vertices (all test meshes) whose error after the fit is "
                  "at most x mm. Error maps: the target, then the fit coloured by its per-vertex error.", ""]
        parts += [f"![{p.stem}]({p.name})" for p in figures]
    return "\n".join(parts) + "\n"


def write_report(ev: "Evaluation", meshes: dict, out: Path, figures: bool = True) -> list[Path]:
    """Write every file of ``REPORT_FILES`` (and the figures) into ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    summary, dis, sparse = summary_rows(ev), disentangle_rows(ev), sparse_rows(ev)
    files = [_csv(out / REPORT_FILES["meshes"], MESH_COLUMNS, _mesh_rows(ev, meshes)),
             _csv(out / REPORT_FILES["summary"], SUMMARY_COLUMNS, summary),
             _csv(out / REPORT_FILES["disentangle"], DISENTANGLE_COLUMNS, dis),
             _csv(out / REPORT_FILES["sparse"], SPARSE_COLUMNS, sparse)]
    pngs = _figures(ev, meshes, out) if figures else []
    doc = {"dataset": str(ev.dataset), "data": ev.dataset_name, "split": ev.split,
           "fit": {**{k: getattr(ev.settings, k) for k in ev.settings.__dataclass_fields__},
                   "alignment": ev.settings.alignment, "vertex_weight_per_m2": ev.settings.vertex_weight * 1e6},
           "runs": [{**r.info, "error": r.error} for r in ev.runs], "summary": summary, "disentangle": dis,
           "sparse": {"markers": ev.markers, "rows": sparse}}
    path = out / REPORT_FILES["json"]
    atomic_write_text(path, json.dumps(_no_nan(doc), indent=1, allow_nan=False) + "\n")
    files.append(path)
    md = out / REPORT_FILES["markdown"]
    atomic_write_text(md, _markdown(ev, summary, dis, sparse, pngs))
    return files + pngs + [md]
