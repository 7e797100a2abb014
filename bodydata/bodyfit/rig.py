"""The generator's anatomical pose rig in torch: joint angles (degrees) -> anny ``local-ref`` bone rotations, differentiable.

Same rule as :class:`bodydata.generator.poses.PoseRig` (each DOF turns its bones about a fixed unit axis by its
angle times the bone's share; a bone's rotation is the product of its DOF rotations, the last DOF applied first),
so that a fitted angle vector means what the generator's angles mean and the pose library's joint limits apply.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bodydata.generator.poses import PoseRig, dof_limits

__all__ = ["LIMIT_UNIT", "TorchRig", "limit_penalty", "limit_residuals"]


@dataclass
class TorchRig:
    """A :class:`PoseRig` as tensors.

    n_bones : number of anny bones; bones : (D, k_max) int64 bone ids per DOF (padded with ``n_bones``, a dummy
    slot); axes : (D, k_max, 3) unit axes; share : (D,) angle share of each bone; lower, upper : (D,) joint limits
    in degrees.
    """

    n_bones: int
    bones: torch.Tensor
    axes: torch.Tensor
    share: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor

    @classmethod
    def from_rig(cls, rig: PoseRig, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> TorchRig:
        n_bones = len(rig.bone_labels)
        k_max = max(len(b) for b in rig.dof_bones)
        d = len(rig.dof_bones)
        bones = np.full((d, k_max), n_bones, np.int64)
        axes = np.zeros((d, k_max, 3))
        axes[..., 2] = 1.0  # dummy slots turn about z by a zero angle share: identity
        for i, (b, a) in enumerate(zip(rig.dof_bones, rig.dof_axes)):
            bones[i, : len(b)] = b
            axes[i, : len(b)] = a
        lo, hi, _ = dof_limits()
        as_t = lambda x: torch.as_tensor(np.asarray(x), dtype=dtype, device=device)  # noqa: E731
        return cls(n_bones, torch.as_tensor(bones, device=device), as_t(axes), as_t(rig.dof_share), as_t(lo), as_t(hi))

    @property
    def n_dofs(self) -> int:
        return int(self.bones.shape[0])

    def rotations(self, angles_deg: torch.Tensor) -> torch.Tensor:
        """angles_deg : (B, D) degrees -> (B, n_bones, 3, 3) bone rotations (identity for bones no DOF turns)."""
        b = angles_deg.shape[0]
        out = torch.eye(3, dtype=angles_deg.dtype, device=angles_deg.device).repeat(b, self.n_bones + 1, 1, 1)
        k = _skew(self.axes)  # (D, k, 3, 3)
        kk = k @ k
        for d in range(self.n_dofs - 1, -1, -1):
            theta = torch.deg2rad(angles_deg[:, d]) * self.share[d]  # (B,)
            s, c = torch.sin(theta)[:, None, None, None], torch.cos(theta)[:, None, None, None]
            rot = torch.eye(3, dtype=out.dtype, device=out.device) + s * k[d] + (1.0 - c) * kk[d]  # (B, k, 3, 3)
            idx = self.bones[d]
            out = out.index_copy(1, idx, rot @ out[:, idx])
        return out[:, : self.n_bones]

    def pose_parameters(self, angles_deg: torch.Tensor) -> torch.Tensor:
        """anny ``local-ref`` pose parameters (B, n_bones, 4, 4) for angles (B, D) degrees (rotation only)."""
        rot = self.rotations(angles_deg)
        top = torch.cat([rot, torch.zeros_like(rot[..., :1])], -1)
        bottom = torch.zeros_like(top[..., :1, :])
        bottom[..., 0, 3] = 1.0
        return torch.cat([top, bottom], -2)


#: degrees of excess beyond a joint limit that cost 1 in :func:`limit_penalty`
LIMIT_UNIT = 10.0


def limit_residuals(angles_deg: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
                    unit: float = LIMIT_UNIT) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, D) excess below and (B, D) excess above the joint limits, in units of ``unit`` degrees (0 inside)."""
    return torch.relu(lower - angles_deg) / unit, torch.relu(angles_deg - upper) / unit


def limit_penalty(angles_deg: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
                  unit: float = LIMIT_UNIT) -> torch.Tensor:
    """(B,) sum over DOFs of the squared excess beyond the joint limits (:func:`limit_residuals`)."""
    below, above = limit_residuals(angles_deg, lower, upper, unit)
    return (below**2 + above**2).sum(-1)


def _skew(v: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(v[..., 0])
    return torch.stack([torch.stack([z, -v[..., 2], v[..., 1]], -1),
                        torch.stack([v[..., 2], z, -v[..., 0]], -1),
                        torch.stack([-v[..., 1], v[..., 0], z], -1)], -2)
