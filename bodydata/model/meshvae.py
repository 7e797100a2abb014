"""``meshvae``: one latent vector, not disentangled — a mesh VAE on ACAP features in the style of Tan et al. (2018).

Same encoder trunk and VAE heads as ``dhnn`` with a single ``latent_dim`` (122 = 50 + 72, so the latent size matches),
and one decoder MLP latent -> ``decoder_widths`` -> 9|V| of FC+tanh units. No coarse features, no neutral output: the
neutral test set is reconstructed like any other mesh.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bodydata.model.base import EmbeddingNet, Forward, ModelContext
from bodydata.model.layers import VaeHead, mlp
from bodydata.model.registry import register_architecture

__all__ = ["MeshVaeConfig", "MeshVae"]


@dataclass
class MeshVaeConfig:
    latent_dim: int = 122
    encoder_widths: tuple[int, int] = (400, 400)
    decoder_widths: tuple[int, int] = (400, 800)

    def __post_init__(self) -> None:
        self.encoder_widths = tuple(int(w) for w in self.encoder_widths)
        self.decoder_widths = tuple(int(w) for w in self.decoder_widths)
        if min(self.latent_dim, *self.encoder_widths, *self.decoder_widths) < 1:
            raise ValueError("every dimension must be >= 1")


@register_architecture("meshvae")
class MeshVae(EmbeddingNet):
    Config = MeshVaeConfig

    def __init__(self, ctx: ModelContext, cfg: MeshVaeConfig):
        super().__init__()
        self.cfg = cfg
        self.n_vertices = ctx.n_vertices
        self.trunk = mlp((9 * ctx.n_vertices, *cfg.encoder_widths))
        self.head = VaeHead(cfg.encoder_widths[-1], cfg.latent_dim)
        self.decoder = mlp((cfg.latent_dim, *cfg.decoder_widths, 9 * ctx.n_vertices))

    def latent_groups(self) -> dict[str, slice]:
        return {"z": slice(0, self.cfg.latent_dim)}

    def encode(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.trunk(f.reshape(len(f), -1)))

    def decode(self, z: torch.Tensor, neutral: bool = True) -> Forward:
        return Forward(f=self.decoder(z).reshape(len(z), self.n_vertices, 9))
