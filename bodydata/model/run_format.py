"""The run folder's format: what ``bodydata train`` writes and :func:`bodydata.model.load` reads.

    RUN/config.yaml                 the resolved config (every default written out)
    RUN/context.npz                 what the network is built for: part labels, skinning mask, feature scaling
    RUN/checkpoints/last.safetensors, best.safetensors   weights (metadata: arch, n_vertices, template digest, epoch)
    RUN/checkpoints/last.state.pt   optimiser, RNG and loop state (``torch.load(weights_only=True)``)
    RUN/metrics.csv                 one row per epoch: every loss term (train, test), λ, learning rate, seconds
    RUN/curves.png                  the loss curves
    RUN/card.json, card.md          dataset and template digests, versions, seed, device, time
"""
from __future__ import annotations

from pathlib import Path

from bodydata.errors import BodydataError

__all__ = ["RUN_FILES", "RunError", "checkpoint_path", "state_path", "require_run", "read_run_card"]

RUN_FILES = {
    "config": "config.yaml",
    "context": "context.npz",
    "checkpoints": "checkpoints",
    "metrics": "metrics.csv",
    "curves": "curves.png",
    "card_json": "card.json",
    "card_md": "card.md",
}
CHECKPOINTS = ("last", "best")


class RunError(BodydataError):
    """A folder is not a usable run, or a checkpoint does not fit the run or the data."""


def checkpoint_path(run: str | Path, which: str = "best") -> Path:
    if which not in CHECKPOINTS:
        raise RunError(f"unknown checkpoint {which!r} (expected {' or '.join(CHECKPOINTS)})")
    return Path(run) / RUN_FILES["checkpoints"] / f"{which}.safetensors"


def state_path(run: str | Path) -> Path:
    return Path(run) / RUN_FILES["checkpoints"] / "last.state.pt"


def require_run(run: str | Path, which: str = "best") -> Path:
    """The checkpoint file of a complete run, or a one-line RunError naming what is missing."""
    run = Path(run)
    if not run.is_dir():
        raise RunError(f"{run}: no such run folder")
    for key in ("config", "context"):
        if not (run / RUN_FILES[key]).is_file():
            raise RunError(f"{run}: not a bodydata run (no {RUN_FILES[key]}; train one with `bodydata train`)")
    ck = checkpoint_path(run, which)
    if not ck.is_file():
        raise RunError(f"{run}: no {which} checkpoint yet ({ck.relative_to(run)} is missing)")
    return ck


def read_run_card(run: str | Path) -> dict:
    """The run's ``card.json`` ({} when a run has none yet); a damaged card is a one-line RunError."""
    import json

    path = Path(run) / RUN_FILES["card_json"]
    if not path.is_file():
        return {}
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: unreadable run card ({' '.join(str(exc).split())[:160]})") from None
    if not isinstance(card, dict):
        raise RunError(f"{path}: not a run card")
    return card
