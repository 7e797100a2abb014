"""What every embedding network shares: its context (sizes, skinning mask, feature scaling), outputs and interface.

All networks work on SCALED features (each dimension mapped to [-0.95, 0.95] with the dataset's train scaling, paper
§3); :mod:`bodydata.model.embedding` wraps them for raw features and meshes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from bodydata.dataset.scaling_io import DatasetScaling

__all__ = ["ModelContext", "Forward", "EmbeddingNet"]


@dataclass
class ModelContext:
    """What a network is built for, taken from the dataset and the template (all saved with the weights).

    n_vertices : |V|.  n_parts : 16.  part_labels : (n,) int64.  skin_mask : (n, P) bool (own + adjacent parts).
    f_scale, f_offset : (n, 9) float, scaled f = f * f_scale + f_offset; g_scale, g_offset : (P, 9) likewise for g;
    f_unscale, f_unoffset, g_unscale, g_unoffset : the inverse maps of f and g (a constant dimension un-scales to its constant).
    """

    n_vertices: int
    n_parts: int
    part_labels: np.ndarray
    skin_mask: np.ndarray
    f_scale: np.ndarray
    f_offset: np.ndarray
    f_unscale: np.ndarray
    f_unoffset: np.ndarray
    g_scale: np.ndarray
    g_offset: np.ndarray
    g_unscale: np.ndarray
    g_unoffset: np.ndarray

    @classmethod
    def from_parts(cls, part_labels: np.ndarray, skin_mask: np.ndarray, scaling: "DatasetScaling") -> "ModelContext":
        fs, fo = scaling.f.affine()
        fis, fio = scaling.f.affine(inverse=True)
        gs, go = scaling.g.affine()
        gis, gio = scaling.g.affine(inverse=True)
        labels = np.asarray(part_labels, np.int64)
        return cls(len(labels), int(skin_mask.shape[1]), labels, np.asarray(skin_mask, bool), fs, fo, fis, fio, gs, go,
                   gis, gio)

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything as named arrays (saved in a run as ``context.npz``)."""
        return {k: np.asarray(getattr(self, k)) for k in self.__dataclass_fields__}

    @classmethod
    def from_arrays(cls, arrays) -> "ModelContext":
        d = {k: np.asarray(arrays[k]) for k in cls.__dataclass_fields__}
        d["n_vertices"], d["n_parts"] = int(d["n_vertices"]), int(d["n_parts"])
        return cls(**d)


@dataclass
class Forward:
    """A network's outputs for a batch (scaled features).

    f : (B, n, 9) f̂.  g : (B, P, 9) ĝ or None.  f_s, g_s : the neutral outputs from (e_s, 0), or None.
    mean, std : (B, L) the posterior of the whole latent vector. groups : name -> slice of the latent (``shape``,
    ``pose``; ``z`` for a single latent), one KL term each.
    """

    f: torch.Tensor
    g: torch.Tensor | None = None
    f_s: torch.Tensor | None = None
    g_s: torch.Tensor | None = None
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None
    groups: dict[str, slice] = field(default_factory=dict)


class EmbeddingNet(nn.Module):
    """Interface of every architecture.

    arch : registry name.  disentangled : True when the latent splits into shape and pose (``groups`` has both).
    trainable : False for a fitted model (PCA) that the trainer fits once instead of optimising.
    """

    arch: ClassVar[str] = ""
    disentangled: ClassVar[bool] = False
    trainable: ClassVar[bool] = True

    def latent_groups(self) -> dict[str, slice]:
        raise NotImplementedError

    def encode(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f : (B, n, 9) scaled -> (mean, std), each (B, L)."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> Forward:
        """z : (B, L) -> outputs (f, and for hierarchical nets g; for disentangled nets the neutral outputs too)."""
        raise NotImplementedError

    def forward(self, f: torch.Tensor, eps: torch.Tensor | None = None) -> Forward:
        """Encode, draw z = mean + std * eps when ``eps`` (B, L) is given (training) else take the mean, decode."""
        mean, std = self.encode(f)
        z = mean if eps is None else mean + std * eps
        out = self.decode(z)
        out.mean, out.std, out.groups = mean, std, self.latent_groups()
        return out
