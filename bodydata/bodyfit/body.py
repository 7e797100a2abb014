"""anny as a differentiable body: (phenotype, joint angles, similarity) -> vertices, and its per-vertex skinning transforms.

One :class:`AnnyBody` holds anny's model for one topology and the generator's rig. Parameters
(:class:`BodyParams`, all tensors with a leading batch axis B):

* ``phenotype`` (B, 6) in [0, 1] (gender, age, muscle, weight, height, proportions; anny's order);
* ``angles`` (B, D) anatomical joint angles in degrees (:mod:`bodydata.generator.poses`; 0 = anny's A-pose);
* ``rotation`` (B, 3, 3), ``translation`` (B, 3), ``scale`` (B,): the similarity into the target's frame,
  ``x = scale * R v + t`` with ``v`` anny's body (metres, z-up, facing -y, pelvis at the origin).

anny poses by linear blend skinning only (checked in the tests: its vertices equal the blended bone transforms
applied to its rest vertices to rounding), so :meth:`AnnyBody.skinning` gives the exact per-vertex transform
that the neutral stage inverts to un-pose a body.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bodydata.bodyfit.rig import TorchRig

__all__ = ["ANGLE_UNIT", "CM", "PHENOTYPE_KEYS", "POSE_PRIOR_UNIT", "AnnyBody", "BodyParams", "BodyOutput"]

#: the fitters' energies measure lengths in centimetres (metres x CM), so a residual of 1 is 1 cm
CM = 100.0
#: the fitters' angle variables are degrees / ANGLE_UNIT, comparable in size to their other variables
ANGLE_UNIT = 30.0
#: the fitters' weak pose prior is |angles / POSE_PRIOR_UNIT|^2 (degrees)
POSE_PRIOR_UNIT = 90.0

from bodydata.generator.synth import PHENOTYPE_KEYS  # noqa: E402  (anny's phenotype order, one place)


@dataclass
class BodyParams:
    """phenotype (B, 6) in [0, 1]; angles (B, D) degrees; rotation (B, 3, 3); translation (B, 3); scale (B,)."""

    phenotype: torch.Tensor
    angles: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    scale: torch.Tensor


@dataclass
class BodyOutput:
    """vertices (B, n, 3) in the target frame; rest (B, n, 3) the body in anny's frame at its reference pose;
    posed (B, n, 3) the body in anny's frame (before the similarity); bone_transforms (B, n_bones, 4, 4) the
    skinning transform of each bone (posed bone pose times inverse rest bone pose), anny's frame."""

    vertices: torch.Tensor
    rest: torch.Tensor
    posed: torch.Tensor
    bone_transforms: torch.Tensor


class AnnyBody:
    """anny of one topology (``notoes`` 12,272 v, ``notoes_collapse10pc`` 1,229 v, ...) with the generator's rig.

    faces : (m, 3) int64; n_vertices; rig : :class:`TorchRig` (D anatomical DOFs); rest_heads : (n_bones, 3)
    float64 bone heads of the average body at the reference pose (metres)."""

    def __init__(self, topology: str = "notoes", device: str | torch.device = "cpu") -> None:
        import anny

        from bodydata.generator.poses import PoseRig

        self.topology = topology
        self.device = torch.device(device)
        self.model = anny.Anny(topology=topology).to(self.device)
        self.model.requires_grad_(False)
        if tuple(self.model.phenotype_labels) != PHENOTYPE_KEYS:
            raise ValueError(f"anny phenotype labels {tuple(self.model.phenotype_labels)} are not {PHENOTYPE_KEYS}")
        self.dtype = self.model.dtype
        self.faces = self.model.faces.detach().cpu().numpy().astype(np.int64)
        self.faces_t = torch.as_tensor(self.faces, device=self.device)
        self.n_vertices = int(self.model.template_vertices.shape[0])
        self.bone_labels = list(self.model.bone_labels)
        with torch.no_grad():
            ref = self.model()
        self.rest_heads = ref["bone_poses"][0, :, :3, 3].cpu().numpy().astype(np.float64)
        # axes from the average body, as the generator does, so angles mean the same for every identity
        self.rig = TorchRig.from_rig(PoseRig.from_reference(self.bone_labels, self.rest_heads), self.dtype, self.device)
        self.weights = self.model.vertex_bone_weights  # (n, k)
        self.weight_bones = self.model.vertex_bone_indices  # (n, k)

    @property
    def n_dofs(self) -> int:
        return self.rig.n_dofs

    def params(self, batch: int, phenotype: np.ndarray | None = None, angles: np.ndarray | None = None) -> BodyParams:
        """Identity similarity, the average phenotype (0.5) and the A-pose (0 degrees) unless given; (B, ...) tensors."""
        t = lambda x: torch.as_tensor(np.asarray(x), dtype=self.dtype, device=self.device)  # noqa: E731
        ph = t(np.broadcast_to(phenotype if phenotype is not None else 0.5, (batch, 6)).copy())
        an = t(np.broadcast_to(angles if angles is not None else 0.0, (batch, self.n_dofs)).copy())
        eye = torch.eye(3, dtype=self.dtype, device=self.device).repeat(batch, 1, 1)
        return BodyParams(ph, an, eye, torch.zeros(batch, 3, dtype=self.dtype, device=self.device),
                          torch.ones(batch, dtype=self.dtype, device=self.device))

    def __call__(self, p: BodyParams) -> BodyOutput:
        out = self.model(pose_parameters=self.rig.pose_parameters(p.angles), phenotype_kwargs=p.phenotype)
        posed = out["vertices"]
        world = p.scale[:, None, None] * posed @ p.rotation.transpose(1, 2) + p.translation[:, None, :]
        transforms = out["bone_poses"] @ torch.linalg.inv(out["rest_bone_poses"])
        return BodyOutput(world, out["rest_vertices"], posed, transforms)

    def rest_model(self, phenotype: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """phenotype (F, 6) -> rest vertices (F, n, 3) and rest bone poses (F, n_bones, 4, 4), anny's frame."""
        out = self.model(phenotype_kwargs=phenotype)
        return out["rest_vertices"], out["rest_bone_poses"]

    def posed_subset(self, rest_vertices: torch.Tensor, rest_bone_poses: torch.Tensor, angles: torch.Tensor,
                     ids: torch.Tensor) -> torch.Tensor:
        """The posed body (anny's frame) at vertices ``ids`` (m,) only: the same numbers as ``__call__(...).posed``.

        rest_vertices (F, n, 3), rest_bone_poses (F, n_bones, 4, 4) from :meth:`rest_model`, F = 1 (one identity
        for every pose) or N; angles (N, D) degrees. Returns (N, m, 3). Only the kinematic chain runs for every
        pose and only m vertices are skinned, which makes many evaluations of one identity (finite-difference
        Jacobians) cheap."""
        transforms, _ = self.model.get_bone_transforms(self.rig.pose_parameters(angles), rest_bone_poses)
        n_rows, n_bones = transforms.shape[:2]
        # a vertex has 2.5 bones on average out of 104: a sparse product is ~40x fewer operations than a dense one
        weights = self.dense_weights[ids].to_sparse()
        flat = transforms[..., :3, :].permute(1, 0, 2, 3).reshape(n_bones, n_rows * 12)
        blend = torch.sparse.mm(weights, flat).view(len(ids), n_rows, 3, 4).permute(1, 0, 2, 3)  # (N, m, 3, 4)
        rest = rest_vertices[:, ids]
        return torch.einsum("nmij,nmj->nmi", blend[..., :3], rest.expand(n_rows, -1, -1)) + blend[..., 3]

    @property
    def dense_weights(self) -> torch.Tensor:
        """(n, n_bones) skinning weights as a dense matrix."""
        if getattr(self, "_dense_weights", None) is None:
            w = torch.zeros(self.n_vertices, len(self.bone_labels), dtype=self.dtype, device=self.device)
            self._dense_weights = w.scatter_add_(1, self.weight_bones, self.weights.to(self.dtype))
        return self._dense_weights

    def skinning(self, bone_transforms: torch.Tensor) -> torch.Tensor:
        """(B, n, 4, 4) per-vertex blended transforms sum_k w_ik T_{b_ik} (rest -> posed, anny's frame)."""
        return (self.weights[None, :, :, None, None] * bone_transforms[:, self.weight_bones]).sum(2)
