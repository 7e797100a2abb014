"""Feature files: mesh lists (folder or manifest), the features .npz format, and the file-level pipelines.

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
from pathlib import Path

import numpy as np

from bodydata.errors import BodydataError
from bodydata.naming import natural_key

__all__ = ["list_meshes", "save_features", "load_features", "extract_files", "reconstruct_files", "MESH_SUFFIXES"]

MESH_SUFFIXES = (".obj", ".ply", ".off")


def list_meshes(source: str | os.PathLike) -> list[Path]:
    """Mesh files of a folder (natural sort order, .obj/.ply/.off) or of a manifest (one path per line,
    relative to the manifest's folder; blank lines and ``#`` comments ignored)."""
    src = Path(source)
    if src.is_dir():
        files = sorted((p for p in src.iterdir() if p.suffix.lower() in MESH_SUFFIXES and p.is_file()), key=lambda p: natural_key(p.name.lower()))
    elif src.is_file():
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
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise BodydataError(f"{path}: not a readable features file ({exc})") from None
    if "f" not in out:
        raise BodydataError(f"{path}: no 'f' array (not a bodydata features file)")
    out["meta"] = json.loads(str(out["meta"])) if "meta" in out else {}
    return out


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
