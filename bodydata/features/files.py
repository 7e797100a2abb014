"""Feature files: mesh lists (folder, manifest CSV or text list), the features .npz format, file-level pipelines.

Features file (``.npz``, written atomically)::

    f              (B, n, 9)  float64 ACAP features, per vertex [r_x r_y r_z s11 s12 s13 s22 s23 s33] (unscaled)
    g              (B, K, 9)  float64 coarse features (only with coarse=True; K = 16 for the paper's parts)
    names          (B,)       str, mesh file stems
    f_min, f_max, f_range     the [-0.95, 0.95] scaler fitted on this set (FeatureScaler.to_arrays("f")); g_* alike
    axis_cost, turn_cost (B,) consistency objectives (disagreeing edges; sum of squared angle differences)
    meta           str, JSON: layout, n_vertices, weighting, compat, consistency, template
"""
from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bodydata.errors import BodydataError
from bodydata.naming import natural_key

__all__ = ["list_meshes", "save_features", "load_features", "read_feature_set", "feature_rows", "FeatureSet",
           "extract_files", "reconstruct_files", "MESH_SUFFIXES", "UNREADABLE_ARRAY_FILE"]

MESH_SUFFIXES = (".obj", ".ply", ".off")
# What np.load raises on an empty, truncated or damaged .npy/.npz (an empty file is EOFError, which click
# would otherwise turn into a bare "Aborted!").
UNREADABLE_ARRAY_FILE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


@dataclass
class FeatureSet:
    """Features to turn back into meshes.

    f : (B, n, 9) ACAP features, unscaled (float32 or float64, possibly a read-only memory map)
    names : (B,) output file stems
    weighting : the edge weighting they were computed with
    path : the file they came from
    """

    f: np.ndarray
    names: list[str]
    weighting: str
    path: Path


def _manifest_meshes(src: Path) -> list[Path]:
    """The ``path`` of every done row of a bodydata manifest CSV (:func:`bodydata.manifest.source_rows.read_source_rows`)."""
    from bodydata.manifest.source_rows import read_source_rows
    from bodydata.manifest.status import is_done

    rows = read_source_rows(src, required=("path", "status"))
    files = [Path(r.path) for r in rows if is_done(r.status)]
    if rows and not files:
        raise BodydataError(f"{src}: none of its {len(rows)} rows is done (all failed)")
    return files


def list_meshes(source: str | os.PathLike) -> list[Path]:
    """Mesh files of a folder (natural sort order, .obj/.ply/.off), of a manifest CSV (``.csv``: the
    ``path`` of each row whose status is done, in row order) or of a text list (one path per line,
    relative to the list's folder; blank lines and ``#`` comments ignored)."""
    src = Path(source)
    if src.is_dir():
        files = sorted((p for p in src.iterdir() if p.suffix.lower() in MESH_SUFFIXES and p.is_file()), key=lambda p: natural_key(p.name.lower()))
    elif src.is_file():
        if src.suffix.lower() == ".csv":
            files = _manifest_meshes(src)
        else:
            files = []
            for line in src.read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    p = Path(line)
                    files.append(p if p.is_absolute() else src.parent / p)
        missing = [p for p in files if not p.is_file()]
        if missing:
            raise BodydataError(f"{src}: {len(missing)} listed meshes do not exist, e.g. {missing[0]}")
    else:
        raise BodydataError(f"{src}: no such folder or manifest file")
    if not files:
        raise BodydataError(f"{src}: no meshes ({', '.join(MESH_SUFFIXES)}) found")
    return files


def save_features(path: str | os.PathLike, f: np.ndarray, names: list[str], meta: dict, g: np.ndarray | None = None,
                  extra: dict | None = None) -> None:
    """Write a features file (see the module docstring), with the scalers fitted on this set."""
    from bodydata.features.scaling import FeatureScaler
    from bodydata.fsutil import atomic_path

    arrays = {"f": np.asarray(f), "names": np.asarray(names, dtype=str), "meta": np.asarray(json.dumps(meta))}
    arrays.update(FeatureScaler.fit(f).to_arrays("f"))
    if g is not None:
        arrays["g"] = np.asarray(g)
        arrays.update(FeatureScaler.fit(g).to_arrays("g"))
    arrays.update(extra or {})
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def load_features(path: str | os.PathLike) -> dict:
    """Read a features file -> dict of arrays plus ``meta`` (a dict)."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise BodydataError(f"{path}: not a readable features file (the file is empty)")
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except AttributeError:  # np.load gave an ndarray: a .npy, which has no names or meta
        raise BodydataError(f"{path}: a single array (.npy), not a features file (.npz from `bodydata features`)"
                            ) from None
    except UNREADABLE_ARRAY_FILE as exc:
        raise BodydataError(f"{path}: not a readable features file, truncated or damaged "
                            f"({type(exc).__name__}: {' '.join(str(exc).split())})") from None
    if "f" not in out:
        raise BodydataError(f"{path}: no 'f' array (not a bodydata features file)")
    out["meta"] = json.loads(str(out["meta"])) if "meta" in out else {}
    return out


def feature_rows(path: Path, f: np.ndarray, n_vertices: int) -> np.ndarray:
    """``f`` as (B, n, 9) (a (B, 9n) array is reshaped); raises naming ``path`` unless it is features of n vertices."""
    if f.ndim == 2 and f.shape[1] == 9 * n_vertices:
        f = f.reshape(f.shape[0], n_vertices, 9)
    if f.ndim != 3 or f.shape[2] != 9:
        raise BodydataError(f"{path}: features have shape {f.shape}, expected (B, n, 9)")
    if f.shape[1] != n_vertices:
        raise BodydataError(f"{path}: features have {f.shape[1]} vertices, the template {n_vertices}")
    return f


def read_feature_set(path: str | os.PathLike, n_vertices: int) -> FeatureSet:
    """The unscaled features of a features file (.npz of :func:`save_features`) for a template of n vertices."""
    data = load_features(path)
    f = feature_rows(Path(path), data["f"], n_vertices)
    names = [str(x) for x in data["names"]] if "names" in data else [f"{i:05d}" for i in range(len(f))]
    return FeatureSet(f, names, data["meta"].get("weighting", "acap"), Path(path))


def extract_files(extractor, files: list[Path], coarse: bool = False, batch: int = 16, progress: bool = True):
    """Features of mesh files with an :class:`~bodydata.features.acap.AcapExtractor`; checks each mesh's
    connectivity against the template. Returns an :class:`~bodydata.features.acap.AcapResult` for all files."""
    from tqdm import tqdm

    from bodydata.features.acap import AcapResult
    from bodydata.mesh import read_mesh

    parts = []
    bar = tqdm(total=len(files), desc="ACAP features", unit="mesh", disable=not progress)
    for s in range(0, len(files), batch):
        chunk = files[s:s + batch]
        meshes = [read_mesh(p, expected_vertices=extractor.n_vertices) for p in chunk]
        parts.append(extractor.from_meshes(meshes, coarse=coarse))
        bar.update(len(chunk))
    bar.close()
    cat = lambda name: np.concatenate([getattr(r, name) for r in parts])  # noqa: E731
    return AcapResult(cat("f"), cat("signs"), cat("turns"), cat("axis_cost"), cat("turn_cost"),
                      cat("g") if coarse else None)


def reconstruct_files(reconstructor, f: np.ndarray, names: list[str], out_dir: str | os.PathLike, faces: np.ndarray,
                      suffix: str = ".ply", batch: int = 64, progress: bool = True) -> list[Path]:
    """Meshes from features ``f (B, n, 9)`` written as ``out_dir/<name><suffix>``; returns the paths."""
    from tqdm import tqdm

    from bodydata.mesh import write_mesh

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    bar = tqdm(total=len(f), desc="ACAP -> mesh", unit="mesh", disable=not progress)
    for s in range(0, len(f), batch):
        verts = reconstructor(np.asarray(f[s:s + batch], np.float64))
        for name, v in zip(names[s:s + batch], verts):
            p = out / f"{name}{suffix}"
            write_mesh(p, v, faces)
            paths.append(p)
        bar.update(len(verts))
    bar.close()
    return paths
