"""Un-posing a mesh through its fitted anny skeleton: the fit's rest body plus the residual turned back by each vertex's skinning rotation.

anny poses by linear blend skinning only: its posed vertex is ``M_i rest_i`` with ``M_i = sum_k w_ik T_{b_ik}``
(:meth:`bodydata.bodyfit.body.AnnyBody.skinning`). Given a fit of a mesh ``y`` (``y = s R posed + t``,
:class:`~bodydata.bodyfit.fit_registered.RegisteredFit`), each mesh vertex is taken back into anny's frame
(``R^T (y - t) / s``) and un-posed as the fit's own rest vertex plus the residual the fit left (the mesh minus
the fit), turned back by the rotation nearest its blended transform: what the model did not explain is thereby
expressed in the bones' local frames and comes out un-posed with the vertex. The result is scaled back by ``s`` so the subject keeps its size. It is anny's *bind* pose
(``rest`` of :class:`~bodydata.bodyfit.body.BodyOutput`), not the reference pose (angles 0, an A-pose, what the
generator calls the neutral): :func:`repose` with angles 0 and the subject's phenotype takes it there, any other
angles to another target pose (same phenotype, so the same bones).
"""
from __future__ import annotations

import numpy as np
import torch

from bodydata.bodyfit.body import AnnyBody, BodyParams
from bodydata.errors import BodydataError
from bodydata.mesh.alignment import kabsch_rotation

__all__ = ["UnposeError", "repose", "skinning_transforms", "unpose", "unpose_to"]


class UnposeError(BodydataError, ValueError):
    """A mesh or fit that does not match the body's topology."""


def skinning_transforms(body: AnnyBody, params: BodyParams) -> np.ndarray:
    """(B, n, 4, 4) float64 per-vertex blended LBS transforms (rest -> posed, anny's frame) of ``params``."""
    with torch.no_grad():
        out = body(params)
        return body.skinning(out.bone_transforms).cpu().numpy().astype(np.float64)


def unpose(body: AnnyBody, params: BodyParams, meshes: np.ndarray) -> np.ndarray:
    """Un-posed meshes (B, n, 3) float64 in anny's frame at its bind pose, in the meshes' size.

    params : the fit of each mesh (batch B, ``vertices = scale * posed @ rotation.T + translation``);
    meshes : (B, n, 3) or (n, 3) float64 in the fit's vertex order.

    Vertex i goes to ``rest_i + Q_i^T (y_i - posed_i)``: the fit's own rest vertex (exact: ``M_i rest_i = posed_i``)
    plus the residual the fit left, turned back by ``Q_i``, the rotation nearest ``M_i`` (polar decomposition).
    Where one bone drives the vertex ``M_i`` is that bone's rigid motion and this is exactly ``M_i^-1 y_i``; where
    bones blend, ``M_i`` shrinks and shears, and its inverse multiplies the residual (a conversion error of 5 cm
    became a metre-long spike on FAUST tr_reg_007), while the rotation keeps its length. So :func:`repose` with
    the fit's own angles gives back the mesh exactly where one bone drives a vertex, and ``posed + M Q^T d``
    (residual d) where bones blend.
    """
    y = np.asarray(meshes, dtype=np.float64)
    single = y.ndim == 2
    y = y[None] if single else y
    b = int(params.angles.shape[0])
    if y.shape != (b, body.n_vertices, 3) or not np.isfinite(y).all():
        raise UnposeError(f"meshes have shape {y.shape}, expected finite ({b}, {body.n_vertices}, 3)")
    rot = params.rotation.detach().cpu().numpy().astype(np.float64)
    t = params.translation.detach().cpu().numpy().astype(np.float64)
    s = params.scale.detach().cpu().numpy().astype(np.float64)
    local = np.einsum("bji,bnj->bni", rot, y - t[:, None, :]) / s[:, None, None]
    with torch.no_grad():
        out = body(params)
        m = body.skinning(out.bone_transforms).cpu().numpy().astype(np.float64)
        fit_rest = out.rest.cpu().numpy().astype(np.float64)
        fit_posed = out.posed.cpu().numpy().astype(np.float64)
    q = kabsch_rotation(m[..., :3, :3])  # the nearest proper rotation: a blend of bones turned far apart can fold
    rest = fit_rest + np.einsum("bnji,bnj->bni", q, local - fit_posed)
    rest = rest * s[:, None, None]
    return rest[0] if single else rest


def repose(body: AnnyBody, phenotype: np.ndarray, angles: np.ndarray, rest: np.ndarray,
           scale: np.ndarray | None = None) -> np.ndarray:
    """rest (B, n, 3) float64 un-posed meshes (bind pose, in the meshes' size) -> (B, n, 3) posed by ``angles``
    (B, D) degrees through the bones of ``phenotype`` (B, 6), anny's frame. ``scale`` (B,): the size :func:`unpose`
    kept (the fit's scale): the bones' offsets are in anny's metres, so the body is re-posed at anny's size and
    scaled back (re-posing the scaled body directly is off by (s - 1) x the offsets: 46 mm at s = 1.05). Angles 0
    are anny's reference pose, not its bind pose (they differ at the arms)."""
    r = np.asarray(rest, dtype=np.float64)
    s = np.ones(len(r)) if scale is None else np.asarray(scale, dtype=np.float64).reshape(-1)
    p = body.params(len(r), np.asarray(phenotype), np.asarray(angles))
    m = skinning_transforms(body, p)
    unit = r / s[:, None, None]
    return s[:, None, None] * (np.einsum("bnij,bnj->bni", m[..., :3, :3], unit) + m[..., :3, 3])


def unpose_to(body: AnnyBody, params: BodyParams, meshes: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Meshes (B, n, 3) float64 fitted by ``params`` taken to ``angles`` (D,) or (B, D) degrees: :func:`unpose`, then
    :func:`repose` through each fit's own phenotype and scale. (B, n, 3) float64 in anny's frame."""
    rest = unpose(body, params, meshes)
    rest = rest[None] if rest.ndim == 2 else rest
    b = len(rest)
    phen = params.phenotype.detach().cpu().numpy().astype(np.float64)
    return repose(body, phen, np.broadcast_to(np.asarray(angles, np.float64), (b, body.n_dofs)), rest,
                  params.scale.detach().cpu().numpy().astype(np.float64))
