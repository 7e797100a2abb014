"""``torch.utils.data`` access to a built dataset: the pairs of one split (memory-mapped) and the half-neutral batches.

``BodyPairsDataset(root, split="train")[i]`` is a dict of tensors ``f (n, 9)``, ``g (16, 9)``, ``f_s (n, 9)``,
``g_s (16, 9)`` (float32, scaled to [-0.95, 0.95] with the dataset's train-fitted scaling unless
``scaled=False``), ``is_neutral`` (bool scalar) and ``index`` (int64 scalar: the row in ``pairs.csv``).
The arrays are opened with ``mmap_mode="r"`` lazily in each process (DataLoader workers included), so a
dataset object is cheap to pickle and never holds the arrays in RAM.

:class:`HalfNeutralBatchSampler` gives the paper's batches (appendix: "each batch is composed of two sets of
data of equal amounts from the Neutral and Pose datasets").
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from bodydata.errors import BodydataError

__all__ = ["BodyPairsDataset", "HalfNeutralBatchSampler", "read_pairs"]

SPLITS = ("train", "test", "all")


def read_pairs(root: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of ``pairs.csv`` (all values strings)."""
    path = Path(root) / "pairs.csv"
    if not path.is_file():
        raise BodydataError(f"{root}: not a bodydata dataset (no pairs.csv; build it with `bodydata build-dataset`)")
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


class BodyPairsDataset(Dataset):
    """Pairs ``{f, g, f_s, g_s}`` of one split of a dataset folder.

    root : the ``bodydata build-dataset`` output folder. split : ``"train"``, ``"test"`` or ``"all"``.
    scaled : apply the dataset's scaling (fitted on the train split). role : None, ``"neutral"`` or ``"pose"``
    to keep only one set.
    Attributes: ``rows (N,) int64`` (rows of ``pairs.csv`` / the arrays), ``is_neutral (N,) bool``, ``ids``.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", scaled: bool = True, role: str | None = None):
        if split not in SPLITS:
            raise BodydataError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
        if role not in (None, "neutral", "pose"):
            raise BodydataError(f"unknown role {role!r} (expected neutral or pose)")
        self.root = Path(root)
        pairs = read_pairs(self.root)
        if not (self.root / "card.json").is_file():
            raise BodydataError(f"{root}: incomplete dataset (no card.json, which a build writes last); rebuild it")
        keep = [r for r in pairs if (split == "all" or r["split"] == split) and (role is None or r["role"] == role)]
        self.rows = np.array([int(r["index"]) for r in keep], dtype=np.int64)
        self.is_neutral = np.array([r["role"] == "neutral" for r in keep], dtype=bool)
        self.ids = [r["id"] for r in keep]
        self.split, self.role, self.scaled = split, role, scaled
        self.neutral_index = np.load(self.root / "neutral_index.npy")
        self.scaler = None
        if scaled:
            from bodydata.dataset.scaling_io import load_scaling

            self.scaler = load_scaling(self.root / "scaling.npz")
        self._f = self._g = None

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._f is None:
            self._f = np.load(self.root / "f.npy", mmap_mode="r")
            self._g = np.load(self.root / "g.npy", mmap_mode="r")
        return self._f, self._g

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_f"] = state["_g"] = None  # memory maps are reopened in the receiving process
        return state

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        f_all, g_all = self._arrays()
        i = int(self.rows[k])
        j = int(self.neutral_index[i])
        f, g, fs, gs = (np.array(a, dtype=np.float32) for a in (f_all[i], g_all[i], f_all[j], g_all[j]))
        if self.scaler is not None:
            f, fs = self.scaler.transform_f(f), self.scaler.transform_f(fs)
            g, gs = self.scaler.transform_g(g), self.scaler.transform_g(gs)
        return {
            "f": torch.from_numpy(f), "g": torch.from_numpy(g), "f_s": torch.from_numpy(fs), "g_s": torch.from_numpy(gs),
            "is_neutral": torch.tensor(bool(self.is_neutral[k])), "index": torch.tensor(i, dtype=torch.int64),
        }


class HalfNeutralBatchSampler(Sampler[list[int]]):
    """Batches of ``batch_size`` dataset positions, half from the neutral pairs and half from the pose pairs.

    is_neutral : (N,) bool (``BodyPairsDataset.is_neutral``) or a dataset with that attribute.
    batch_size : even. An epoch has ``ceil(max(#neutral, #pose) / (batch_size / 2))`` batches (``drop_last``:
    floor): every pair of the larger set is used once per epoch, the smaller set is cycled, reshuffled each
    time it runs out. Each batch lists its neutral half first. ``seed`` + the epoch (``set_epoch``) fix the order.
    """

    def __init__(self, is_neutral, batch_size: int, shuffle: bool = True, drop_last: bool = False, seed: int = 0):
        mask = np.asarray(getattr(is_neutral, "is_neutral", is_neutral), dtype=bool)
        if batch_size < 2 or batch_size % 2:
            raise BodydataError(f"batch_size must be even and >= 2 (half neutral, half pose), got {batch_size}")
        self.neutral = np.flatnonzero(mask)
        self.pose = np.flatnonzero(~mask)
        if not len(self.neutral) or not len(self.pose):
            raise BodydataError(f"half-neutral batches need both sets: {len(self.neutral)} neutral, {len(self.pose)} pose pairs")
        self.half = batch_size // 2
        self.shuffle, self.drop_last, self.seed, self.epoch = shuffle, drop_last, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = max(len(self.neutral), len(self.pose))
        return n // self.half if self.drop_last else -(-n // self.half)

    def _stream(self, pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` positions from ``pool``: whole passes over it, each in a fresh order."""
        reps = -(-count // len(pool))
        passes = [rng.permutation(pool) if self.shuffle else pool for _ in range(reps)]
        return np.concatenate(passes)[:count]

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        n_batches = len(self)
        need = n_batches * self.half
        neu = self._stream(self.neutral, need, rng)
        pos = self._stream(self.pose, need, rng)
        for b in range(n_batches):
            s = slice(b * self.half, (b + 1) * self.half)
            yield [int(x) for x in neu[s]] + [int(x) for x in pos[s]]
