"""The body-model row of Table 2: anny itself fitted to the same test meshes (its phenotype and joint angles), as the
paper fits SMPL; with the same disentanglement tests, phenotype standing for e_s and joint angles for e_p.

Only for datasets on an anny template (``anny``, ``anny-lite``): their meshes are in anny's own vertex order, so
the fit is :class:`~bodydata.bodyfit.fit_registered.RegisteredFitter` (vertex correspondence known; the meshes are
metres, so no free scale). :class:`AnnyAsEmbedding` gives anny the two calls the disentanglement tests make of a
trained embedding (``vertices(e_s, e_p)`` and ``net.latent_groups()``), so (a)-(c) run unchanged.
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import torch

from bodydata.device import pick_device
from bodydata.evaluate.metrics import vertex_errors_mm
from bodydata.evaluate.reconstruction import RunReconstruction, SplitMeshes

__all__ = ["BODY_MODEL_RUN", "AnnyAsEmbedding", "anny_topology_of", "body_model_reconstructions"]

#: the row's name in the report's tables
BODY_MODEL_RUN = "anny-body-model"


def anny_topology_of(template_spec: str | None) -> str | None:
    """The anny topology of a dataset's template (``notoes``, ``notoes_collapse10pc``), or None for another template."""
    if not template_spec:
        return None
    from bodydata.templates.template import load_template

    try:
        return (load_template(template_spec).meta or {}).get("anny_topology")
    except Exception:  # a template folder that is gone: no body-model row, the runs' rows still stand
        return None


class AnnyAsEmbedding:
    """anny seen as a shape/pose embedding: e_s = phenotype (6, in [0, 1]), e_p = joint angles (D, degrees)."""

    disentangled = True

    def __init__(self, topology: str, device: str | torch.device | None = None) -> None:
        from bodydata.bodyfit.body import AnnyBody

        self.body = AnnyBody(topology, pick_device(device))
        self.device = self.body.device
        d = self.body.n_dofs
        self.net = SimpleNamespace(latent_groups=lambda: {"shape": slice(0, 6), "pose": slice(6, 6 + d)})

    def vertices(self, e_s: torch.Tensor, e_p: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n, 3) anny's body (metres, its own frame) of phenotypes e_s (B, 6) in angles e_p (B, D) (None: its
        reference pose, the generator's true neutral)."""
        b = len(e_s)
        p = self.body.params(b)
        p.phenotype = e_s.to(self.body.dtype).clamp(0.0, 1.0)
        if e_p is not None:
            p.angles = e_p.to(self.body.dtype)
        return self.body(p).posed


def body_model_reconstructions(meshes: dict[str, SplitMeshes], topology: str, batch_size: int = 16,
                               device: str | torch.device | None = None) -> dict[str, RunReconstruction]:
    """anny fitted to every test mesh of every role: {role: RunReconstruction} with fit_mm the MED (mm),
    encoder_mm NaN (no encoder), z = (phenotype, angles) (N, 6 + D), shape = phenotype (N, 6). device : where
    anny runs (None: CUDA when present)."""
    from bodydata.bodyfit.body import AnnyBody
    from bodydata.bodyfit.fit_registered import RegisteredFitSettings, RegisteredFitter

    fitter = RegisteredFitter(AnnyBody(topology, pick_device(device)), RegisteredFitSettings(fit_scale=False))
    out = {}
    for role, m in meshes.items():
        fits, seconds = [], []
        for b0 in range(0, len(m.rows), max(1, batch_size)):
            t0 = time.perf_counter()
            part = fitter.fit(m.vertices[b0:b0 + batch_size])
            fits += part
            seconds += [(time.perf_counter() - t0) / len(part)] * len(part)
        fitted = np.stack([f.vertices for f in fits])
        z = np.stack([np.concatenate([f.phenotype, f.angles]) for f in fits])
        out[role] = RunReconstruction(
            role=role, fit_mm=np.array([f.med_mm for f in fits]), encoder_mm=np.full(len(fits), np.nan),
            fit_vertex_mm=vertex_errors_mm(fitted, m.vertices), fitted=fitted, z=z, shape=z[:, :6],
            seconds=np.asarray(seconds), iterations=np.zeros(len(fits), np.int64))
    return out
