"""Virtual scans of a mesh set with known truth (``bodydata virtual-scan``): PLY scans, truth .npz, a source-row CSV.

Output folder::

    scans/<name>.ply      the scan: points (N vertices, no faces) or points + the noisy triangulation
    truth/<name>.npz      face (N,) int64 and barycentric (N, 3) float64 on the source mesh (-1 / NaN: floor),
                          surface (N, 3) the exact surface points, sensor (N,) int64, sensors (S, 3),
                          noise_sigma (N,) noise std along each point's ray, up (3,), source_path, source_sha256
    landmarks/<name>.csv  with ``landmarks="carry"``: the source mesh's landmarks carried to the scan (the scan
                          point nearest each landmark vertex on the true surface; one in a hole, no point
                          within ``LANDMARK_REACH``, is left out), named in the row's ``landmarks_path``
    scans.csv             one source row per input mesh (``bodydata.manifest.source_rows``): kind ``scan``,
                          topology ``own``, gt_path = the truth file, gt_kind ``virtual_scan``; identity columns,
                          units and up axis copied from the input row; extra columns source_mesh, n_points,
                          hole_fraction, floor_fraction, n_landmarks, seconds. A mesh that could not be scanned is a failed row
                          with the reason. The file is a source manifest: a pipeline's ``convert`` step reads it
                          (option ``manifest``), landmarks included; ``bodydata sources scan --source folder
                          --root DIR/scans`` lists the scans too (point clouds are accepted), without landmarks.

Each row's up axis (for the floor and the sensors' ring) is the input row's ``up_axis`` when it has one, else the
configured one. Every file is written atomically; the same inputs and seed give the same files.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bodydata.errors import BodydataError
from bodydata.fsutil import atomic_path, sha256_file
from bodydata.manifest.source_rows import (
    ManifestRow,
    read_source_rows,
    write_source_rows,
)
from bodydata.manifest.status import STATUS_DONE, STATUS_FAILED, is_done
from bodydata.mesh.io import SUPPORTED_SUFFIXES, read_mesh, write_mesh
from bodydata.mesh.scanner import Scan, ScannerConfig, VirtualScanner
from bodydata.naming import natural_key

__all__ = ["GT_KIND", "LANDMARK_REACH", "ScanSetResult", "carried_landmarks", "scan_meshes", "write_scan"]

GT_KIND = "virtual_scan"
LANDMARK_REACH = 0.02   # metres: a landmark with no scan point this close fell in a hole


@dataclass
class ScanSetResult:
    """rows : one source row per input mesh (done or failed); csv : the written ``scans.csv``."""

    rows: list[ManifestRow]
    csv: Path

    @property
    def n_failed(self) -> int:
        return sum(r.status == STATUS_FAILED for r in self.rows)


def _inputs(meshes: Path) -> list[ManifestRow]:
    """The input rows: every mesh file of a folder (natural order) or every row of a source-row CSV."""
    if meshes.is_dir():
        files = sorted((p for p in meshes.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES),
                       key=lambda p: natural_key(p.name.lower()))
        if not files:
            raise BodydataError(f"{meshes}: no mesh files ({', '.join(SUPPORTED_SUFFIXES)}) in the folder")
        return [ManifestRow(id=p.stem, source="folder", kind="mesh", path=str(p.resolve()), topology="", up_axis="",
                            status=STATUS_DONE) for p in files]
    if meshes.is_file() and meshes.suffix.lower() == ".csv":
        return read_source_rows(meshes, required=("path",))
    raise BodydataError(f"{meshes}: expected a folder of meshes or a source-row manifest CSV")


def write_scan(scan: Scan, ply: Path, truth: Path, source_path: str, source_sha256: str) -> None:
    """Write one scan's PLY (points, or points + faces) and its truth .npz, each atomically."""
    write_mesh(ply, scan.points, scan.faces)
    with atomic_path(truth) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, face=scan.face, barycentric=scan.barycentric, surface=scan.surface, sensor=scan.sensor,
                 sensors=scan.sensors, noise_sigma=scan.noise_sigma, up=scan.up, source_path=np.array(source_path),
                 source_sha256=np.array(source_sha256))


def carried_landmarks(scan: Scan, row: ManifestRow, vertices: np.ndarray) -> dict[str, int]:
    """The source mesh's landmarks (the row's ``landmarks_path``, else the shipped file of the topology its vertex
    count names; none when neither applies) as scan point ids: {name: point id}, those in holes left out."""
    from bodydata.templates.landmarks import (
        TOPOLOGIES,
        load_landmarks,
        read_landmarks_csv,
    )

    if row.landmarks_path:
        marks = read_landmarks_csv(row.landmarks_path, len(vertices))
    else:
        topo = next((t for t, n in TOPOLOGIES.items() if n == len(vertices)), None)
        marks = load_landmarks(topo) if topo else {}
    names = list(marks)
    ids = scan.nearest_points(vertices[[marks[k] for k in names]], LANDMARK_REACH) if names else []
    return {k: int(i) for k, i in zip(names, ids) if i >= 0}


def scan_meshes(meshes: str | os.PathLike, out: str | os.PathLike, config: ScannerConfig | None = None,
                landmarks: str = "none", progress: bool = True) -> ScanSetResult:
    """Scan every mesh of ``meshes`` (a folder or a source-row CSV) into ``out`` (layout in the module docstring);
    ``landmarks`` : ``"none"`` or ``"carry"`` (the source meshes' landmarks, as scan point ids).

    Raises :class:`BodydataError` before any scan when the input or the configuration is unusable; a mesh that
    fails is a failed row, never an exception."""
    from tqdm import tqdm

    config = config or ScannerConfig()
    config.check()
    if landmarks not in ("none", "carry"):
        raise BodydataError(f"virtual scan: landmarks must be none or carry, got {landmarks!r}")
    src, out = Path(meshes), Path(out)
    inputs = _inputs(src)
    names = [r.id.replace("/", "__").replace("\\", "__") or Path(r.path).stem for r in inputs]
    if len(set(names)) != len(names):
        raise BodydataError(f"{src}: two meshes would share an output name (ids must be unique)")
    scanners: dict[str, VirtualScanner] = {}
    rows = []
    for row, name in tqdm(list(zip(inputs, names)), desc="virtual scan", unit="mesh", disable=not progress):
        up = row.up_axis.strip() or config.up_axis
        new = ManifestRow(id=f"{GT_KIND}/{name}", source=row.source, kind="scan", path="", topology="own",
                          subject=row.subject, pose=row.pose, sequence=row.sequence, frame=row.frame, units=row.units,
                          up_axis=up, gt_kind=GT_KIND, extra={"source_mesh": row.path})
        t0 = time.perf_counter()
        try:
            if not is_done(row.status):
                raise BodydataError(f"{row.path}: the input row is failed ({row.error or 'no reason given'})")
            if up not in scanners:
                scanners[up] = VirtualScanner(dataclasses.replace(config, up_axis=up))
            mesh = read_mesh(row.path)
            scan = scanners[up].scan(mesh.vertices, mesh.faces)
            ply, truth = out / "scans" / f"{name}.ply", out / "truth" / f"{name}.npz"
            marks = carried_landmarks(scan, row, mesh.vertices) if landmarks == "carry" else None
            if marks is not None:
                from bodydata.templates.landmarks import write_landmarks_csv

                new.landmarks_path = str(write_landmarks_csv(out / "landmarks" / f"{name}.csv", marks).resolve())
                new.extra["n_landmarks"] = str(len(marks))
            write_scan(scan, ply, truth, row.path, sha256_file(row.path))
        except (BodydataError, OSError, MemoryError) as exc:
            reason = " ".join(str(exc).split())
            new.status, new.error = STATUS_FAILED, reason if str(row.path) in reason else f"{row.path}: {reason}"
            rows.append(new)
            continue
        new.path, new.gt_path = str(ply.resolve()), str(truth.resolve())
        new.n_vertices, new.n_faces, new.sha256 = len(scan.points), len(scan.faces), sha256_file(ply)
        new.status = STATUS_DONE
        new.extra.update(n_points=str(len(scan.points)), hole_fraction=f"{scan.hole_fraction:.4f}",
                         floor_fraction=f"{1.0 - scan.on_body.mean():.4f}",
                         seconds=f"{time.perf_counter() - t0:.2f}")
        rows.append(new)
    csv = write_source_rows(out / "scans.csv", rows)
    return ScanSetResult(rows, csv)
