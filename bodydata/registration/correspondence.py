"""Shape-correspondence benchmark through the template (the FAUST_r / SCAPE_r protocol) and .vts landmark transfer.

Protocol for a pair (A, B) of independently remeshed shapes with ``.vts`` sample maps (line k of every file
is the same body point): for each sample k, the point ``A[vts_A[k]]`` is located on A's converted mesh
(closest point: template face + barycentrics), the same face/barycentrics on B's converted mesh give a
point, and its nearest vertex of B is the prediction. Error = geodesic distance on B between the
prediction and ``B[vts_B[k]]``, divided by sqrt(surface area of B), averaged over k; published as x100.
Geodesics come from :mod:`bodydata.mesh.geodesic`: exact ones by default (edge-flip shortened paths, equal to
exact MMP distances to ~1e-4 here), as published figures use; shortest paths along B's edges (Dijkstra), the
earlier ruler, read up to ~5 % long on these meshes. The summary and the per-pair CSV name the method.

``--registrations`` routes the true FAUST registrations (SMPL connectivity) through the same protocol, each
aligned to its remeshed shape by the similarity fitted on the .vts samples: the discretisation floor.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bodydata.errors import BodydataError
from bodydata.manifest.status import is_done

__all__ = ["RemeshedShape", "VtsLandmarks", "load_shape", "pair_error", "run_benchmark"]


@dataclass
class RemeshedShape:
    """stem; vertices (n, 3) float64; faces (m, 3) int64; vts (k,) int64 0-based sample vertices."""

    stem: str
    vertices: np.ndarray
    faces: np.ndarray
    vts: np.ndarray


def _find(root: Path, stem: str, suffixes=(".off", ".ply", ".obj")) -> Path:
    for suf in suffixes:
        hits = sorted(root.rglob(f"{stem}{suf}"))
        if hits:
            return hits[0]
    raise BodydataError(f"{root}: no mesh named {stem}")


def load_shape(root: str | Path, stem: str) -> RemeshedShape:
    """The remeshed shape ``stem`` under ``root`` and its ``corres/<stem>.vts``."""
    from bodydata.mesh import read_mesh
    from bodydata.sources.remeshed import read_vts

    root = Path(root)
    mesh = read_mesh(_find(root, stem))
    vts = read_vts(root / "corres" / f"{stem}.vts", len(mesh.vertices))
    return RemeshedShape(stem, mesh.vertices, mesh.faces, vts)


def transfer(a: RemeshedShape, conv_a: np.ndarray, conv_b: np.ndarray, conv_faces: np.ndarray, b_vertices: np.ndarray,
             b_tree=None) -> np.ndarray:
    """Predicted B vertex (k,) for each sample ``a.vts`` via the converted meshes (same connectivity ``conv_faces``)."""
    from scipy.spatial import cKDTree

    from bodydata.mesh.carry import carry

    pb = carry(a.vertices[a.vts], conv_a, conv_b, conv_faces)
    tree = b_tree or cKDTree(b_vertices)
    return np.asarray(tree.query(pb)[1], np.int64)


def pair_error(pred: np.ndarray, truth: np.ndarray, solver, area: float) -> np.ndarray:
    """(k,) float64 geodesic error / sqrt(area): distance on the solver's mesh (a
    :class:`bodydata.mesh.geodesic.GeodesicSolver`) from ``truth[k]`` to ``pred[k]`` ((k,) int vertex ids)."""
    return solver.pairs(truth, pred) / np.sqrt(area)


def _similarity(src: np.ndarray, dst: np.ndarray):
    from bodydata.registration.register import similarity_from_points

    return similarity_from_points(src, dst)


class VtsLandmarks:
    """Landmarks on remeshed FAUST shapes through their .vts samples: each SMPL landmark (shipped smpl_6890 CSV)
    goes to the sample k whose SMPL vertex (``corres/sampleID.vts``) is nearest to it on a FAUST registration,
    then to vertex ``vts[k]`` of the shape. Call as ``(row, vertices) -> {name: vertex id}``."""

    def __init__(self, registrations: str | Path, root: str | Path):
        from scipy.spatial import cKDTree

        from bodydata.mesh import read_mesh
        from bodydata.sources.remeshed import read_vts
        from bodydata.templates.landmarks import load_landmarks

        self.root = Path(root)
        reg = read_mesh(_find(Path(registrations), "tr_reg_000", (".ply",))).vertices
        sample = read_vts(self.root / "corres" / "sampleID.vts", len(reg))
        lm = load_landmarks("smpl_6890")
        _, k = cKDTree(reg[sample]).query(reg[[lm[n] for n in lm]])
        self.sample_of = {n: int(i) for n, i in zip(lm, k)}
        self.offset_mm = {n: float(np.linalg.norm(reg[sample[i]] - reg[lm[n]])) * 1000 for n, i in self.sample_of.items()}

    def __call__(self, row, vertices) -> dict[str, int]:
        from bodydata.sources.remeshed import read_vts

        stem = Path(row.path).stem
        vts = read_vts(self.root / "corres" / f"{stem}.vts", len(vertices))
        return {n: int(vts[k]) for n, k in self.sample_of.items()}


def _parse_ids(ids: str | None, available: list[str]) -> list[str]:
    if not ids:
        return available
    out = []
    for part in ids.split(","):
        part = part.strip()
        m = re.fullmatch(r"(.*?)(\d+)-(\d+)", part)
        if m:
            width = len(m.group(2))
            out += [f"{m.group(1)}{i:0{width}d}" for i in range(int(m.group(2)), int(m.group(3)) + 1)]
        elif part:
            out.append(part)
    missing = [s for s in out if s not in available]
    if missing:
        raise BodydataError(f"shapes not available: {', '.join(missing[:5])}")
    return out


def run_benchmark(root: str | Path, converted: str | Path, registrations: bool = False, ids: str | None = None,
                  pairs: str = "all", out: str | Path | None = None, geodesics: str | None = None) -> dict:
    """Run the protocol over shape pairs; returns a summary (mean error x100 over pairs, counts, failed shapes,
    the geodesic method). ``geodesics``: ``"exact"`` (= None, edge-flip shortened paths) or a method of
    :mod:`bodydata.mesh.geodesic` (``"mmp"``, ``"heat"``, ``"dijkstra"``)."""
    from scipy.spatial import cKDTree

    from bodydata.fsutil import atomic_write_text
    from bodydata.mesh import read_mesh
    from bodydata.mesh.areas import surface_area
    from bodydata.mesh.geodesic import METHOD_NOTES, GeodesicSolver, resolve_method

    method = resolve_method(geodesics)
    root, converted = Path(root), Path(converted)
    conv: dict[str, np.ndarray] = {}
    faces_t = None
    if registrations:
        from bodydata.sources.remeshed import read_vts

        stems = sorted(p.stem for p in (root / "corres").glob("*.vts") if p.stem != "sampleID" and not p.stem.endswith(".sym"))
        sample = None
    else:
        from bodydata.registration.convert import read_results

        rows = read_results(converted / "conversion.csv")
        if not rows:
            raise BodydataError(f"{converted}: no conversion.csv")
        stems = []
        for r in rows:
            if is_done(r.status) and r.out_path and Path(r.out_path).is_file():
                m = read_mesh(r.out_path)
                conv[Path(r.source_path).stem] = m.vertices
                faces_t = m.faces
                stems.append(Path(r.source_path).stem)
        failed = sorted(Path(r.source_path).stem for r in rows if not is_done(r.status))
    use = _parse_ids(ids, sorted(stems)) if ids else sorted(stems)
    shapes = {s: load_shape(root, s) for s in use}
    if registrations:
        failed = []
        for s in use:
            reg = read_mesh(_find(converted, s, (".ply",)))
            faces_t = reg.faces
            if sample is None:
                sample = read_vts(root / "corres" / "sampleID.vts", len(reg.vertices))
            sc, rot, t = _similarity(reg.vertices[sample], shapes[s].vertices[shapes[s].vts])
            conv[s] = sc * reg.vertices @ rot.T + t
    if pairs == "all":
        plist = [(a, b) for a in use for b in use if a != b]
    else:
        plist = list(zip(use[:-1], use[1:]))
    by_target: dict[str, list[str]] = {}
    for a, b in plist:
        by_target.setdefault(b, []).append(a)
    records, note = [], METHOD_NOTES[method]
    for b, sources in by_target.items():
        sb = shapes[b]
        solver = GeodesicSolver(sb.vertices, sb.faces, method)
        note = solver.note
        area = surface_area(sb.vertices, sb.faces)
        tree = cKDTree(sb.vertices)
        preds = [transfer(shapes[a], conv[a], conv[b], faces_t, sb.vertices, tree) for a in sources]
        # One call for every source of this target: repeated (truth, prediction) pairs are solved once.
        err = pair_error(np.concatenate(preds), np.tile(sb.vts, len(sources)), solver, area).reshape(len(sources), -1)
        records += [{"source": a, "target": b, "error_x100": 100 * float(e.mean()), "geodesics": solver.method}
                    for a, e in zip(sources, err)]
    errs = np.array([r["error_x100"] for r in records])
    summary = {"pairs": len(records), "shapes": len(use), "mean_error_x100": float(errs.mean()) if len(errs) else None,
               "median_pair_x100": float(np.median(errs)) if len(errs) else None,
               "max_pair_x100": float(errs.max()) if len(errs) else None, "mode": "registrations" if registrations else "converted",
               "failed_shapes": failed, "geodesics": method, "geodesics_note": note}
    if out:
        buf = io.StringIO()
        wr = csv.DictWriter(buf, fieldnames=["source", "target", "error_x100", "geodesics"], lineterminator="\n")
        wr.writeheader()
        wr.writerows(records)
        atomic_write_text(out, buf.getvalue())
    return summary
