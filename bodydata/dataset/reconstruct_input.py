"""Meshes back from features: a features file of ``bodydata features`` or the ``f.npy`` of a built dataset.

A dataset's ``f.npy`` (P, n, 9) float32 is stored unscaled (:mod:`bodydata.dataset.build`; the scaling in
``scaling.npz`` is applied only when :class:`~bodydata.dataset.torch_dataset.BodyPairsDataset` reads it), so it is
reconstructed as it is. Its rows are named ``<row>_<pair id>`` from ``pairs.csv`` and reconstructed with the
edge weighting the card records for the extractor.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from bodydata.errors import BodydataError
from bodydata.features.files import UNREADABLE_ARRAY_FILE, FeatureSet, feature_rows, read_feature_set

__all__ = ["read_dataset_features", "read_reconstruction_features", "reconstruct_feature_file"]


def _card(folder: Path, path: Path) -> dict:
    from bodydata.dataset.format import FILES

    card = folder / FILES["card_json"]
    if not card.is_file():
        raise BodydataError(f"{path}: a .npy is read as the f.npy of a dataset, but {folder} has no "
                            f"{FILES['card_json']} (build it with `bodydata build-dataset`, or pass a features .npz "
                            "from `bodydata features`)")
    try:
        return json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BodydataError(f"{card}: not a readable dataset card ({' '.join(str(exc).split())})") from None


def read_dataset_features(path: str | os.PathLike, n_vertices: int) -> FeatureSet:
    """The rows of a dataset's ``f.npy`` (memory-mapped) for a template of n vertices, named from ``pairs.csv``."""
    from bodydata.dataset.format import read_pairs
    from bodydata.registration.convert import converted_name

    path = Path(path)
    card = _card(path.parent, path)
    if path.stat().st_size == 0:
        raise BodydataError(f"{path}: not a readable feature array (the file is empty)")
    try:
        f = np.load(path, mmap_mode="r", allow_pickle=False)
    except UNREADABLE_ARRAY_FILE as exc:
        raise BodydataError(f"{path}: not a readable feature array, truncated or damaged "
                            f"({type(exc).__name__}: {' '.join(str(exc).split())})") from None
    f = feature_rows(path, f, n_vertices)
    ids = [row.get("id", "") for row in read_pairs(path.parent)]
    if len(ids) != len(f):
        raise BodydataError(f"{path}: {len(f)} rows but pairs.csv beside it has {len(ids)} (an incomplete build?)")
    names = [f"{i:05d}_{Path(converted_name(pid)).stem}" for i, pid in enumerate(ids)]
    weighting = (card.get("features", {}).get("extractor") or {}).get("weighting", "acap")
    return FeatureSet(f, names, weighting, path)


def read_reconstruction_features(path: str | os.PathLike, n_vertices: int) -> FeatureSet:
    """A dataset's ``f.npy`` (``.npy``) or a features file (any other name, .npz); one-line errors name the file."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return read_dataset_features(path, n_vertices)
    return read_feature_set(path, n_vertices)


def reconstruct_feature_file(vertices: np.ndarray, faces: np.ndarray, path: str | os.PathLike,
                             out_dir: str | os.PathLike, suffix: str = ".ply", device: str | None = None) -> list[Path]:
    """Reconstruct every row of ``path`` (see :func:`read_reconstruction_features`) on the template
    ``vertices (n, 3) float64``, ``faces (m, 3) int64`` into ``out_dir/<name><suffix>``; returns the paths."""
    from bodydata.features.files import reconstruct_files
    from bodydata.features.reconstruct import AcapReconstructor

    feats = read_reconstruction_features(path, len(vertices))
    rec = AcapReconstructor(vertices, faces, weighting=feats.weighting, device=device)
    return reconstruct_files(rec, feats.f, feats.names, out_dir, faces, suffix=suffix)
