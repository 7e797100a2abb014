"""The disentangled hierarchical network of the paper (§5, Eq. 7-9, appendix Table 8), and its ``baseline``.

Encoder: f (9|V|) -> FC+tanh -> ``encoder_widths[0]`` -> FC+tanh -> ``encoder_widths[1]`` (400) -> VAE heads e_s (50), e_p (72).
Decoder: C = T_c(C_s(e_s) + C_p(e_p)) -> ĝ (16x9); D = T_d(D_s(e_s) + D_p(e_p)) -> d (9|V|); b = W ĝ; f̂ = b + d;
the neutral outputs f̂_s, ĝ_s come from (e_s, 0). C_s, D_s: 50 -> 400 -> 800; C_p, D_p: 72 -> 400 -> 800; T_c: 800 -> 144;
T_d: 800 -> 9|V|; every unit FC+tanh.

``baseline`` is the paper's: the same network without the base path (no C, no W, no coarse loss): f̂ = d.

Where the skinning blend happens (``blend_space``): the features are scaled per dimension, so a convex blend of scaled
part features is not the scaled blend of raw ones. ``raw`` un-scales ĝ, blends, and scales the result with f's scaling
(both fixed layers), clamped to [-1, 1] because a dimension of f that barely varies over the train set has a huge
scale factor and would turn a small raw error into a huge scaled one; ``scaled`` blends the scaled ĝ directly, as
Eq. 9 reads. ``benchmarks/bench_blend_space.py`` measures both on the same data.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bodydata.model.base import EmbeddingNet, Forward, ModelContext
from bodydata.model.layers import FixedAffine, VaeHead, mlp
from bodydata.model.registry import register_architecture
from bodydata.model.skinning import SkinningLayer

__all__ = ["DhnnConfig", "Dhnn", "Baseline"]

BLEND_SPACES = ("raw", "scaled")


@dataclass
class DhnnConfig:
    """The ``dhnn`` / ``baseline`` section of a run's config (defaults: the paper's sizes)."""

    shape_dim: int = 50
    pose_dim: int = 72
    encoder_widths: tuple[int, int] = (400, 400)
    branch_widths: tuple[int, int] = (400, 800)
    blend_space: str = "scaled"
    skin_own_logit: float = 2.0

    def __post_init__(self) -> None:
        self.encoder_widths = tuple(int(w) for w in self.encoder_widths)
        self.branch_widths = tuple(int(w) for w in self.branch_widths)
        if self.blend_space not in BLEND_SPACES:
            raise ValueError(f"blend_space must be one of {', '.join(BLEND_SPACES)}, got {self.blend_space!r}")
        if min(self.shape_dim, self.pose_dim, *self.encoder_widths, *self.branch_widths) < 1:
            raise ValueError("every dimension must be >= 1")


class _Branches(nn.Module):
    """X = T(X_s(e_s) + X_p(e_p)), and the neutral X from (e_s, 0) in the same matrix product."""

    def __init__(self, shape_dim: int, pose_dim: int, widths: tuple[int, ...], d_out: int):
        super().__init__()
        self.from_shape = mlp((shape_dim, *widths))
        self.from_pose = mlp((pose_dim, *widths))
        self.out = mlp((widths[-1], d_out))

    def forward(self, e_s: torch.Tensor, e_p: torch.Tensor, neutral: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        hs = self.from_shape(e_s)
        h = hs + self.from_pose(e_p)
        if not neutral:
            return self.out(h), None
        # C_p(0) is one vector for the whole batch; stacking both inputs makes the wide last layer one product.
        h0 = hs + self.from_pose(torch.zeros_like(e_p[:1]))
        both = self.out(torch.cat([h, h0], dim=0))
        return both[: len(h)], both[len(h):]


@register_architecture("dhnn")
class Dhnn(EmbeddingNet):
    """The paper's network. ctx : :class:`~bodydata.model.base.ModelContext`; cfg : :class:`DhnnConfig`."""

    Config = DhnnConfig
    disentangled = True
    base_path = True

    def __init__(self, ctx: ModelContext, cfg: DhnnConfig):
        super().__init__()
        self.cfg = cfg
        n, p = ctx.n_vertices, ctx.n_parts
        self.n_vertices, self.n_parts = n, p
        self.trunk = mlp((9 * n, *cfg.encoder_widths))
        self.head_shape = VaeHead(cfg.encoder_widths[-1], cfg.shape_dim)
        self.head_pose = VaeHead(cfg.encoder_widths[-1], cfg.pose_dim)
        self.difference = _Branches(cfg.shape_dim, cfg.pose_dim, cfg.branch_widths, 9 * n)
        if self.base_path:
            self.coarse = _Branches(cfg.shape_dim, cfg.pose_dim, cfg.branch_widths, 9 * p)
            self.skinning = SkinningLayer(ctx.skin_mask, ctx.part_labels, cfg.skin_own_logit)
            if cfg.blend_space == "raw":
                self.unscale_g = FixedAffine(ctx.g_unscale, ctx.g_unoffset)
                self.scale_f = FixedAffine(ctx.f_scale, ctx.f_offset)

    def latent_groups(self) -> dict[str, slice]:
        s = self.cfg.shape_dim
        return {"shape": slice(0, s), "pose": slice(s, s + self.cfg.pose_dim)}

    def encode(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(f.reshape(len(f), -1))
        ms, ss = self.head_shape(h)
        mp, sp = self.head_pose(h)
        return torch.cat([ms, mp], dim=1), torch.cat([ss, sp], dim=1)

    def _base(self, g: torch.Tensor) -> torch.Tensor:
        """ĝ (B, P, 9) scaled -> b (B, n, 9) scaled."""
        if self.cfg.blend_space == "raw":
            return self.scale_f(self.skinning(self.unscale_g(g))).clamp(-1.0, 1.0)
        return self.skinning(g)

    def decode(self, z: torch.Tensor, neutral: bool = True) -> Forward:
        """z : (B, 50+72) -> f̂, ĝ and (``neutral``) f̂_s, ĝ_s from (e_s, 0)."""
        g_ = self.latent_groups()
        e_s, e_p = z[:, g_["shape"]], z[:, g_["pose"]]
        b_ = len(z)
        d, d_s = self.difference(e_s, e_p, neutral)
        d = d.reshape(b_, self.n_vertices, 9)
        d_s = None if d_s is None else d_s.reshape(b_, self.n_vertices, 9)
        if not self.base_path:
            return Forward(f=d, f_s=d_s)
        c, c_s = self.coarse(e_s, e_p, neutral)
        g = c.reshape(b_, self.n_parts, 9)
        g_s = None if c_s is None else c_s.reshape(b_, self.n_parts, 9)
        if g_s is None:
            return Forward(f=self._base(g) + d, g=g)
        base = self._base(torch.cat([g, g_s], dim=0))
        return Forward(f=base[:b_] + d, g=g, f_s=base[b_:] + d_s, g_s=g_s)


@register_architecture("baseline")
class Baseline(Dhnn):
    """The paper's Baseline: the disentangled VAE without the base path (no C, W or coarse loss): f̂ = D(e_s, e_p)."""

    base_path = False
