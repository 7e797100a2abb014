"""The dataset folder's format: file names, ``pairs.csv`` columns, the card, and the typed batch a model receives.

One place for what :mod:`bodydata.dataset.build` writes and :mod:`bodydata.dataset.torch_dataset` (and the
model and trainer above it) read::

    DATASET/f.npy               (P, n, 9) float32   ACAP features of pair i's mesh (unscaled)
    DATASET/g.npy               (P, 16, 9) float32  coarse features of pair i's mesh (unscaled)
    DATASET/neutral_index.npy   (P,) int64          row of f.npy / g.npy holding pair i's f_s / g_s
    DATASET/scaling.npz         per-dimension scaling to [-0.95, 0.95], fitted on the train split only
    DATASET/pairs.csv           one row per pair (``PAIR_COLUMNS``)
    DATASET/failures.csv        rows left out and why (``FAILURE_COLUMNS``)
    DATASET/card.json, card.md  counts, template, scaling, split, inputs, versions; card.json is written last
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bodydata.errors import BodydataError

if TYPE_CHECKING:
    import torch

__all__ = ["DATASET_FORMAT", "DATASET_VERSION", "FILES", "PAIR_COLUMNS", "FAILURE_COLUMNS", "ROLES", "SPLITS",
           "DatasetError", "read_pairs", "read_card", "PairBatch"]

DATASET_FORMAT = "bodydata-pairs"
DATASET_VERSION = 1
FILES = {
    "f": "f.npy",
    "g": "g.npy",
    "neutral_index": "neutral_index.npy",
    "scaling": "scaling.npz",
    "pairs": "pairs.csv",
    "failures": "failures.csv",
    "card_json": "card.json",
    "card_md": "card.md",
}
PAIR_COLUMNS = ["index", "id", "role", "split", "source", "subject", "pose", "identity", "neutral_index",
                "neutral_id", "path", "sha256", "neutral_path", "neutral_sha256", "manifest"]
FAILURE_COLUMNS = ["id", "source", "subject", "path", "stage", "reason"]
ROLES = ("neutral", "pose")
SPLITS = ("train", "test", "all")


class DatasetError(BodydataError):
    """A folder is not a complete bodydata dataset (the message names the folder and what is missing)."""


def read_pairs(root: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of ``pairs.csv`` (all values strings)."""
    path = Path(root) / FILES["pairs"]
    if not path.is_file():
        raise DatasetError(f"{root}: not a bodydata dataset (no {FILES['pairs']}; build it with `bodydata build-dataset`)")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    missing = [c for c in ("index", "id", "role", "split") if rows and c not in rows[0]]
    if missing:
        raise DatasetError(f"{path}: not a pairs table (missing columns: {', '.join(missing)})")
    return rows


def read_card(root: str | os.PathLike) -> dict[str, Any]:
    """``card.json`` of a complete dataset. Raises ``DatasetError`` for an incomplete or foreign folder."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    path = root / FILES["card_json"]
    if not path.is_file():
        raise DatasetError(f"{root}: incomplete dataset (no {FILES['card_json']}, which a build writes last); "
                           "rebuild it with `bodydata build-dataset`")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable dataset card ({exc})") from None
    if card.get("format") != DATASET_FORMAT:
        raise DatasetError(f"{path}: not a bodydata dataset card (format {card.get('format')!r})")
    for key in ("f", "g", "neutral_index", "scaling", "pairs"):
        if not (root / FILES[key]).is_file():
            raise DatasetError(f"{root}: incomplete dataset (no {FILES[key]})")
    return card


@dataclass
class PairBatch:
    """A batch of pairs as the models take it (scaled features, float32, on one device).

    f : (B, n, 9) the mesh's ACAP features.  g : (B, 16, 9) its coarse features.
    f_s : (B, n, 9), g_s : (B, 16, 9) its identity's neutral.  is_neutral : (B,) bool.  index : (B,) int64 rows.
    """

    f: "torch.Tensor"
    g: "torch.Tensor"
    f_s: "torch.Tensor"
    g_s: "torch.Tensor"
    is_neutral: "torch.Tensor"
    index: "torch.Tensor"

    @classmethod
    def from_dict(cls, d: dict[str, "torch.Tensor"]) -> "PairBatch":
        return cls(d["f"], d["g"], d["f_s"], d["g_s"], d["is_neutral"], d["index"])

    def to(self, device, non_blocking: bool = False) -> "PairBatch":
        return PairBatch(*(t.to(device, non_blocking=non_blocking) for t in
                           (self.f, self.g, self.f_s, self.g_s, self.is_neutral, self.index)))

    def __len__(self) -> int:
        return int(self.f.shape[0])
