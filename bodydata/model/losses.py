"""The training loss (paper Eq. 10-13): L1 on f, f_s (per element), on g, g_s (coarse), and the KL terms of the latents.

Loss = λ_s E_sKL + λ_r1 E_L1_1 + λ_rc1 E_L1c_1 + λ_p E_pKL + λ_r2 E_L1_2 + λ_rc2 E_L1c_2, with λ_rc = rc_ratio · λ_r
(1 : 0.6 in the paper). E_L1_1 / E_L1c_1 are the neutral terms (f_s, g_s), E_L1_2 / E_L1c_2 the posed ones (f, g).
A term whose output the architecture lacks (no coarse path, no neutral branch) is absent, not zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bodydata.dataset.format import PairBatch
from bodydata.model.base import Forward

__all__ = ["LossWeights", "kl_normal", "loss_terms", "total_loss"]

#: latent group -> name of its KL term
KL_TERMS = {"shape": "kl_s", "pose": "kl_p", "z": "kl"}


@dataclass(frozen=True)
class LossWeights:
    """λ of Eq. 13. lambda_s / lambda_p weigh the KL terms (lambda_s also weighs a single latent's KL)."""

    lambda_r1: float = 2.5e3
    lambda_r2: float = 2.5e4
    rc_ratio: float = 0.6
    lambda_s: float = 1.0
    lambda_p: float = 1.0

    def of(self, term: str) -> float:
        return {
            "l1_f_s": self.lambda_r1, "l1_f": self.lambda_r2,
            "l1_g_s": self.rc_ratio * self.lambda_r1, "l1_g": self.rc_ratio * self.lambda_r2,
            "kl_s": self.lambda_s, "kl_p": self.lambda_p, "kl": self.lambda_s,
        }[term]


def kl_normal(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std²) || N(0, I)) per sample, summed over the dimensions: (B, L) -> (B,)."""
    var = std.square()
    return 0.5 * (mean.square() + var - 1.0 - torch.log(var.clamp_min(1e-12))).sum(dim=1)


def loss_terms(out: Forward, batch: PairBatch) -> dict[str, torch.Tensor]:
    """Each term as a scalar: L1 means per element over the batch (Eq. 10-11), KL means over the batch (Eq. 12)."""
    terms = {"l1_f": (out.f - batch.f).abs().mean()}
    if out.f_s is not None:
        terms["l1_f_s"] = (out.f_s - batch.f_s).abs().mean()
    if out.g is not None:
        terms["l1_g"] = (out.g - batch.g).abs().mean()
    if out.g_s is not None:
        terms["l1_g_s"] = (out.g_s - batch.g_s).abs().mean()
    if out.mean is not None and out.std is not None:
        for group, sl in out.groups.items():
            terms[KL_TERMS[group]] = kl_normal(out.mean[:, sl], out.std[:, sl]).mean()
    return terms


def total_loss(terms: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    return sum(weights.of(k) * v for k, v in terms.items())
