"""Checkpoints of a run, written atomically: weights as safetensors, the loop's state as a weights-only torch file.

The weights file carries metadata (arch, n_vertices, template digest, epoch) so that a checkpoint from another template
or architecture is refused with one line instead of failing deep inside ``load_state_dict``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bodydata.fsutil import atomic_path
from bodydata.model.embedding import load_weights
from bodydata.model.run_format import RunError, checkpoint_path, state_path

__all__ = ["save_weights", "save_state", "load_state", "load_weights"]


def save_weights(run: str | os.PathLike, which: str, net: nn.Module, meta: dict[str, Any]) -> Path:
    """``RUN/checkpoints/<which>.safetensors`` (tensors made contiguous and moved to the CPU)."""
    from safetensors.torch import save_file

    path = checkpoint_path(run, which)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={k: str(v) for k, v in meta.items()})
    return path


def save_state(run: str | os.PathLike, state: dict[str, Any]) -> Path:
    """The loop's state (optimiser state dict, epoch, best loss, RNG states): only tensors, numbers, strings and
    lists/dicts of them, so ``torch.load(weights_only=True)`` reads it."""
    path = state_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_state(run: str | os.PathLike) -> dict[str, Any]:
    path = state_path(run)
    if not path.is_file():
        raise RunError(f"{run}: nothing to resume (no {path.name}); start the run without --resume")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file: pickle, zip and torch raise different types
        raise RunError(f"{path}: unreadable training state ({' '.join(str(exc).split())[:200]})") from None
