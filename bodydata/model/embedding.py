"""A trained embedding as a body model: ``load(RUN)`` -> ``encode(f)``, ``decode(e_s, e_p)``, ``vertices(e_s, e_p)``.

Features in and out are RAW ACAP features (the dataset's f, unscaled); the network's scaling is applied inside.
``vertices`` goes through the differentiable ACAP reconstruction (Eq. 6; :class:`~bodydata.features.reconstruct.
AcapReconstructor`, prefactored once per model) on the model's device.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from bodydata.model.base import EmbeddingNet, ModelContext
from bodydata.model.registry import ArchitectureError, build_network, make_config
from bodydata.model.run_format import RUN_FILES, RunError, read_run_card, require_run

if TYPE_CHECKING:
    from bodydata.features.reconstruct import AcapReconstructor

__all__ = ["BodyEmbedding", "load", "read_run_config", "load_weights"]


class BodyEmbedding(nn.Module):
    """A network with its feature scaling and (lazily) its template's mesh reconstruction.

    net : the architecture. ctx : its context. template : template name or folder (for ``vertices``).
    weighting : the ACAP edge weighting the dataset's features were computed with.
    """

    def __init__(self, net: EmbeddingNet, ctx: ModelContext, template: str | None = None, weighting: str = "acap"):
        super().__init__()
        self.net = net
        self.ctx = ctx
        self.template = template
        self.weighting = weighting
        self.register_buffer("f_scale", torch.as_tensor(ctx.f_scale, dtype=torch.float32))
        self.register_buffer("f_offset", torch.as_tensor(ctx.f_offset, dtype=torch.float32))
        self.register_buffer("f_unscale", torch.as_tensor(ctx.f_unscale, dtype=torch.float32))
        self.register_buffer("f_unoffset", torch.as_tensor(ctx.f_unoffset, dtype=torch.float32))
        self._rec: "AcapReconstructor | None" = None
        #: the options the dataset's features were extracted with (the run card's copy of the dataset card's)
        self.extractor: dict = {"weighting": weighting}

    @property
    def disentangled(self) -> bool:
        return self.net.disentangled

    @property
    def device(self) -> torch.device:
        return self.f_scale.device

    def scale(self, f: torch.Tensor) -> torch.Tensor:
        """raw f (B, n, 9) -> scaled."""
        return f.to(self.f_scale.dtype) * self.f_scale + self.f_offset

    def unscale(self, f: torch.Tensor) -> torch.Tensor:
        """scaled f (B, n, 9) -> raw; a constant dimension returns its constant."""
        return f * self.f_unscale + self.f_unoffset

    @torch.no_grad()
    def encode(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        """Posterior means of raw features f (B, n, 9): (e_s (B, 50), e_p (B, 72)), or z (B, L) for one latent."""
        mean, _ = self.net.encode(self.scale(torch.as_tensor(f, device=self.device)))
        return self.split(mean)

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        groups = self.net.latent_groups()
        if self.disentangled:
            return z[:, groups["shape"]], z[:, groups["pose"]]
        return z

    def join(self, e_s: torch.Tensor, e_p: torch.Tensor | None) -> torch.Tensor:
        if not self.disentangled:
            if e_p is not None:
                raise ArchitectureError(f"{self.net.arch} has one latent vector, not shape and pose: call decode(z)")
            return e_s
        if e_p is None:
            e_p = torch.zeros(len(e_s), self.net.latent_groups()["pose"].stop - self.net.latent_groups()["pose"].start,
                              dtype=e_s.dtype, device=e_s.device)
        return torch.cat([e_s, e_p], dim=1)

    def decode(self, e_s: torch.Tensor, e_p: torch.Tensor | None = None) -> torch.Tensor:
        """Raw features f̂ (B, n, 9) of (e_s, e_p); e_p None or zeros gives the neutral body. For a single-latent
        model pass z as the only argument. Differentiable."""
        out = self.net.decode(self.join(e_s, e_p), neutral=False)
        return self.unscale(out.f)

    def reconstructor(self) -> "AcapReconstructor":
        if self._rec is None:
            from bodydata.features.reconstruct import AcapReconstructor
            from bodydata.templates.template import load_template

            if not self.template:
                raise RunError("this model has no template recorded, so it cannot make vertices")
            tpl = load_template(self.template)
            self._rec = AcapReconstructor(tpl.vertices, tpl.faces, weighting=self.weighting, device=self.device)
        return self._rec

    def vertices(self, e_s: torch.Tensor, e_p: torch.Tensor | None = None) -> torch.Tensor:
        """Meshes (B, |V|, 3) float64 in the template's connectivity, metres; differentiable in the codes."""
        return self.reconstructor()(self.decode(e_s, e_p))

    def forward(self, e_s: torch.Tensor, e_p: torch.Tensor | None = None) -> torch.Tensor:
        return self.vertices(e_s, e_p)


def read_run_config(run: str | os.PathLike) -> dict:
    from bodydata.yamlfile import read_yaml_mapping

    path = Path(run) / RUN_FILES["config"]
    cfg = read_yaml_mapping(path, RunError, "a run config is a mapping")
    if "arch" not in cfg:
        raise RunError(f"{path}: not a bodydata run config (no 'arch')")
    return cfg


def load_weights(net: nn.Module, path: Path, expect: dict[str, str] | None = None) -> dict[str, str]:
    """Load a safetensors checkpoint into ``net``; ``expect`` metadata (arch, n_vertices, ...) must match.
    Returns the checkpoint's metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated / foreign files
        raise RunError(f"{path}: unreadable checkpoint ({' '.join(str(exc).split())[:200]})") from None
    for key, want in (expect or {}).items():
        if key in meta and str(meta[key]) != str(want):
            raise RunError(f"{path}: checkpoint was made for {key} {meta[key]}, this run has {want}")
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RunError(f"{path}: checkpoint does not fit the network (missing {len(missing)} tensors, e.g. "
                       f"{(missing or unexpected)[0]!r}; {len(unexpected)} unexpected)")
    return meta


def load(run: str | os.PathLike, checkpoint: str = "last", device: str | torch.device | None = None) -> BodyEmbedding:
    """The trained model of a run folder, in eval mode, on ``device`` (default: CUDA when available, else CPU).

    checkpoint : ``last`` (the weights at the end of training; default) or ``best`` (the epoch with the lowest test
    loss: chosen by looking at the test split, so a number measured on that split with it is optimistic)."""
    run = Path(run)
    ck = require_run(run, checkpoint)
    cfg = read_run_config(run)
    arch = cfg["arch"]
    with np.load(run / RUN_FILES["context"]) as z:
        ctx = ModelContext.from_arrays(z)
    net = build_network(arch, make_config(arch, cfg.get(arch), where=f"{run / RUN_FILES['config']}: "), ctx)
    load_weights(net, ck, {"arch": arch, "n_vertices": str(ctx.n_vertices)})
    card = read_run_card(run)
    feats = card.get("features", {})
    model = BodyEmbedding(net, ctx, card.get("template", {}).get("spec"), feats.get("weighting", "acap"))
    model.extractor = dict(feats.get("extractor") or {"weighting": model.weighting})
    from bodydata.device import pick_device

    return model.to(pick_device(device)).eval()
