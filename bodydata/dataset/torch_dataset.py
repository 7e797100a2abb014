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

import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from bodydata.dataset.format import FILES, ROLES, SPLITS, DatasetError, PairBatch, read_card, read_pairs
from bodydata.errors import BodydataError

__all__ = ["BodyPairsDataset", "InMemoryPairs", "HalfNeutralBatchSampler"]


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
        if role is not None and role not in ROLES:
            raise BodydataError(f"unknown role {role!r} (expected {' or '.join(ROLES)})")
        self.root = Path(root)
        pairs = read_pairs(self.root)
        self.card = read_card(self.root)
        keep = [r for r in pairs if (split == "all" or r["split"] == split) and (role is None or r["role"] == role)]
        self.rows = np.array([int(r["index"]) for r in keep], dtype=np.int64)
        self.is_neutral = np.array([r["role"] == "neutral" for r in keep], dtype=bool)
        self.ids = [r["id"] for r in keep]
        self.split, self.role, self.scaled = split, role, scaled
        self.neutral_index = np.load(self.root / FILES["neutral_index"])
        self.scaler = None
        if scaled:
            from bodydata.dataset.scaling_io import load_scaling

            self.scaler = load_scaling(self.root / FILES["scaling"])
        self._f = self._g = None

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._f is None:
            try:
                self._f = np.load(self.root / FILES["f"], mmap_mode="r")
                self._g = np.load(self.root / FILES["g"], mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise DatasetError(f"{self.root}: unreadable feature arrays ({' '.join(str(exc).split())})") from None
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

    Several processes (DistributedDataParallel): ``num_replicas`` processes each take ``rank``'s share of every
    global batch — a slice of the neutral half and the same slice of the pose half — so the union over the ranks is
    exactly the single-process batch. ``batch_size`` is the global batch; half of it must divide by num_replicas.
    """

    def __init__(self, is_neutral, batch_size: int, shuffle: bool = True, drop_last: bool = False, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0):
        mask = np.asarray(getattr(is_neutral, "is_neutral", is_neutral), dtype=bool)
        if batch_size < 2 or batch_size % 2:
            raise BodydataError(f"batch_size must be even and >= 2 (half neutral, half pose), got {batch_size}")
        if num_replicas < 1 or not 0 <= rank < num_replicas or (batch_size // 2) % num_replicas:
            raise BodydataError(f"a global batch of {batch_size} splits into equal halves for {num_replicas} processes "
                                f"only when {batch_size // 2} divides by {num_replicas}")
        self.num_replicas, self.rank = int(num_replicas), int(rank)
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
        share = self.half // self.num_replicas
        for b in range(n_batches):
            s = slice(b * self.half + self.rank * share, b * self.half + (self.rank + 1) * share)
            yield [int(x) for x in neu[s]] + [int(x) for x in pos[s]]


class InMemoryPairs:
    """The pairs of a :class:`BodyPairsDataset` held as scaled tensors on one device, batched by gathering.

    For a set that fits in memory (a 5,594-pair set at 12k vertices is 2.5 GB float32): each mesh row is read
    and scaled once, and a batch is an index gather instead of a DataLoader round trip per item. Gives exactly the
    values ``dataset[k]`` gives (float32 scaling).
    dataset : the split.  device : where the tensors live.
    """

    def __init__(self, dataset: BodyPairsDataset, device: str | torch.device = "cpu"):
        f_all, g_all = dataset._arrays()
        rows = dataset.rows
        neutral = dataset.neutral_index[rows]
        uniq, inv = np.unique(np.concatenate([rows, neutral]), return_inverse=True)
        self.is_neutral = dataset.is_neutral
        self.index = torch.as_tensor(rows, dtype=torch.int64, device=device)
        self._own = torch.as_tensor(inv[: len(rows)], dtype=torch.int64, device=device)
        self._neu = torch.as_tensor(inv[len(rows):], dtype=torch.int64, device=device)
        f = np.asarray(f_all[uniq], dtype=np.float32)
        g = np.asarray(g_all[uniq], dtype=np.float32)
        if dataset.scaler is not None:
            f, g = dataset.scaler.transform_f(f), dataset.scaler.transform_g(g)
        self.f = torch.as_tensor(f, device=device)
        self.g = torch.as_tensor(g, device=device)
        self._flags = torch.as_tensor(self.is_neutral, device=device)

    def __len__(self) -> int:
        return len(self._own)

    def batch(self, positions: Sequence[int]) -> PairBatch:
        """The pairs at ``positions`` (of the split) as one :class:`~bodydata.dataset.format.PairBatch`."""
        k = torch.as_tensor(list(positions), dtype=torch.int64, device=self.f.device)
        own, neu = self._own[k], self._neu[k]
        return PairBatch(self.f[own], self.g[own], self.f[neu], self.g[neu], self._flags[k], self.index[k])
