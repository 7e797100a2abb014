"""``pca``: the linear baseline — the first ``n_components`` principal components of the scaled train features f.

Fitted once (scikit-learn's PCA on the train split's f, pose and neutral meshes alike), not trained. As a module it
encodes by projection and decodes by the linear map back, so the evaluation treats it like the networks. Codes are
whitened (each divided by its component's standard deviation over the train set), so that a code's prior N(0, I) and
a fit's step size mean the same for pca as for the VAEs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bodydata.model.base import EmbeddingNet, Forward, ModelContext
from bodydata.model.registry import register_architecture

__all__ = ["PcaConfig", "Pca"]


@dataclass
class PcaConfig:
    n_components: int = 122
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_components < 1:
            raise ValueError("n_components must be >= 1")


@register_architecture("pca")
class Pca(EmbeddingNet):
    Config = PcaConfig
    trainable = False

    def __init__(self, ctx: ModelContext, cfg: PcaConfig):
        super().__init__()
        self.cfg = cfg
        self.n_vertices = ctx.n_vertices
        d = 9 * ctx.n_vertices
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("components", torch.zeros(cfg.n_components, d))
        self.register_buffer("sigma", torch.ones(cfg.n_components))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def fit(self, f: np.ndarray) -> dict[str, float]:
        """f : (N, n, 9) scaled train features. Returns the explained variance ratio summary."""
        from sklearn.decomposition import PCA

        x = np.asarray(f, np.float32).reshape(len(f), -1)
        k = min(self.cfg.n_components, len(x), x.shape[1])
        # randomized SVD: exact enough for the leading components and linear in |V| (12k vertices: 110k columns)
        pca = PCA(n_components=k, svd_solver="randomized" if k < min(x.shape) else "full", random_state=self.cfg.seed)
        pca.fit(x)
        comp = np.zeros(self.components.shape, np.float32)
        comp[:k] = pca.components_
        sigma = np.ones(self.sigma.shape, np.float32)
        sigma[:k] = np.sqrt(np.maximum(pca.explained_variance_, 1e-12))
        self.mean.copy_(torch.from_numpy(pca.mean_.astype(np.float32)))
        self.components.copy_(torch.from_numpy(comp))
        self.sigma.copy_(torch.from_numpy(sigma))
        self.fitted.fill_(True)
        return {"components": int(k), "explained_variance": float(np.sum(pca.explained_variance_ratio_))}

    def latent_groups(self) -> dict[str, slice]:
        return {"z": slice(0, self.cfg.n_components)}

    def forward(self, f: torch.Tensor, eps: torch.Tensor | None = None) -> Forward:
        """Projection and back; no posterior, so no KL term."""
        z, _ = self.encode(f)
        out = self.decode(z)
        out.mean = z
        return out

    def encode(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = (f.reshape(len(f), -1) - self.mean) @ self.components.T / self.sigma
        return z, torch.zeros_like(z)

    def decode(self, z: torch.Tensor, neutral: bool = True) -> Forward:
        return Forward(f=((z * self.sigma) @ self.components + self.mean).reshape(len(z), self.n_vertices, 9))
