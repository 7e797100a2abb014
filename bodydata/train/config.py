"""A run's config: the architecture's section, the loss (Eq. 13 and the paper's two-phase schedule) and the loop.

YAML file, every key optional; defaults are the paper's (appendix): λ_s = λ_p = 1, λ_r : λ_rc = 1 : 0.6,
(λ_r1, λ_r2) = (2.5e3, 2.5e4) for 1600 epochs then (1e3, 1e4) for 600, batch 24 = 12 neutral + 12 pose, Adam, lr 1e-4::

    arch: dhnn                 # or baseline, meshvae, pca, or a registered architecture of your own
    dhnn: {shape_dim: 50, pose_dim: 72, encoder_widths: [400, 400], branch_widths: [400, 800], blend_space: scaled}
    loss: {lambda_s: 1.0, lambda_p: 1.0, rc_ratio: 0.6,
           schedule: [{epochs: 1600, lambda_r1: 2500.0, lambda_r2: 25000.0},
                      {epochs: 600, lambda_r1: 1000.0, lambda_r2: 10000.0}]}
    train: {epochs: 2200, batch_size: 24, lr: 1.0e-4, seed: 0, device: auto, data_on_device: auto, workers: 0}

``train.epochs`` other than the schedule's total stretches the phases in proportion (the paper's 16:6).
The resolved config (every default written out) is saved as ``RUN/config.yaml``.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from bodydata.config_section import section_from_mapping
from bodydata.errors import BodydataError
from bodydata.model.losses import LossWeights
from bodydata.model.registry import ArchitectureError, config_dict, get_architecture, make_config

__all__ = ["ConfigError", "Phase", "LossConfig", "LoopConfig", "RunConfig", "load_config", "PAPER_SCHEDULE"]

DEVICES = ("auto", "cpu", "cuda")


class ConfigError(BodydataError):
    """A config file or option that cannot be used (unknown key, wrong type, out of range)."""


@dataclass
class Phase:
    """One phase of the schedule: ``epochs`` epochs with these reconstruction weights."""

    epochs: int
    lambda_r1: float
    lambda_r2: float


PAPER_SCHEDULE = (Phase(1600, 2.5e3, 2.5e4), Phase(600, 1e3, 1e4))


@dataclass
class LossConfig:
    lambda_s: float = 1.0
    lambda_p: float = 1.0
    rc_ratio: float = 0.6
    schedule: list[Phase] = field(default_factory=lambda: [dataclasses.replace(p) for p in PAPER_SCHEDULE])

    def phases(self, epochs: int) -> list[Phase]:
        """The schedule stretched to ``epochs`` in all (each phase at least one epoch while epochs allow)."""
        total = sum(p.epochs for p in self.schedule)
        if epochs == total:
            return list(self.schedule)
        out, done = [], 0
        for k, p in enumerate(self.schedule):
            n = epochs - done if k == len(self.schedule) - 1 else max(1, round(epochs * p.epochs / total))
            n = max(0, min(n, epochs - done))
            out.append(Phase(n, p.lambda_r1, p.lambda_r2))
            done += n
        return out

    def weights(self, epoch: int, epochs: int) -> tuple[int, LossWeights]:
        """(phase number, the λ of Eq. 13) for 0-based ``epoch`` of ``epochs``."""
        end = 0
        phases = self.phases(epochs)
        for k, p in enumerate(phases):
            end += p.epochs
            if epoch < end or k == len(phases) - 1:
                return k, LossWeights(p.lambda_r1, p.lambda_r2, self.rc_ratio, self.lambda_s, self.lambda_p)
        raise AssertionError("unreachable")


@dataclass
class LoopConfig:
    """The training loop. device: auto (CUDA when present) | cpu | cuda. data_on_device: keep the split's scaled
    features on the device (auto: when they take under a quarter of its memory; on CPU always, in RAM).
    workers: DataLoader worker processes when the data is not held in memory. test_every: epochs between test passes.
    threads: CPU threads for torch (0: leave torch's default). checkpoint_every: epochs between checkpoints (1: every
    epoch, so an interruption loses at most the epoch in progress; a full-size model's checkpoint is ~1.6 GB with the
    optimiser state, so a fast GPU run may prefer a few epochs)."""

    epochs: int = 2200
    batch_size: int = 24
    lr: float = 1e-4
    seed: int = 0
    device: str = "auto"
    data_on_device: str = "auto"
    workers: int = 0
    test_every: int = 1
    threads: int = 0
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 2 or self.batch_size % 2:
            raise ValueError(f"batch_size must be even and >= 2 (half neutral, half pose), got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.device not in DEVICES and not (self.device.startswith("cuda:") and self.device[5:].isdigit()):
            raise ValueError(f"device must be one of {', '.join(DEVICES)} or cuda:N, got {self.device!r}")
        if self.data_on_device not in ("auto", "yes", "no"):
            raise ValueError(f"data_on_device must be auto, yes or no, got {self.data_on_device!r}")
        if self.workers < 0 or self.test_every < 1 or self.threads < 0 or self.checkpoint_every < 1:
            raise ValueError("workers and threads must be >= 0, test_every and checkpoint_every >= 1")


@dataclass
class RunConfig:
    arch: str
    model: Any
    loss: LossConfig
    train: LoopConfig

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, self.arch: config_dict(self.model),
                "loss": {**{k: v for k, v in dataclasses.asdict(self.loss).items() if k != "schedule"},
                         "schedule": [dataclasses.asdict(p) for p in self.loss.schedule]},
                "train": dataclasses.asdict(self.train)}

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _section(cls: type, data: Any, name: str, where: str) -> Any:
    return section_from_mapping(cls, data, name, where, ConfigError)


def _loss(data: Any, where: str) -> LossConfig:
    data = dict(data or {}) if isinstance(data, dict) or data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}config section 'loss' must be a mapping")
    schedule = data.pop("schedule", None)
    cfg = _section(LossConfig, data, "loss", where)
    if schedule is not None:
        if not isinstance(schedule, list) or not schedule:
            raise ConfigError(f"{where}config key 'loss.schedule' must be a non-empty list of phases")
        cfg.schedule = [_section(Phase, p, f"loss.schedule[{k}]", where) for k, p in enumerate(schedule)]
        if any(p.epochs < 1 or p.lambda_r1 < 0 or p.lambda_r2 < 0 for p in cfg.schedule):
            raise ConfigError(f"{where}config key 'loss.schedule': every phase needs epochs >= 1 and λ >= 0")
    return cfg


def load_config(path: str | os.PathLike | None = None, arch: str | None = None,
                overrides: dict[str, Any] | None = None) -> RunConfig:
    """The resolved config from a YAML file (optional), an ``arch`` override and ``train`` overrides (e.g. epochs)."""
    from bodydata.yamlfile import read_yaml_mapping

    data: dict[str, Any] = {}
    where = ""
    if path is not None:
        where = f"{path}: "
        data = read_yaml_mapping(path, ConfigError, "a config is a mapping of sections (arch, loss, train, <arch>)")
    name = arch or data.get("arch") or "dhnn"
    try:
        get_architecture(name)
    except ArchitectureError as exc:
        raise ConfigError(f"{where}{exc}") from None
    from bodydata.model.registry import architecture_names

    allowed = {"arch", "loss", "train", *architecture_names()}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{where}config key '{unknown[0]}' does not exist (known: {', '.join(sorted(allowed))})")
    try:
        model = make_config(name, data.get(name), where)
    except ArchitectureError as exc:
        raise ConfigError(str(exc)) from None
    train = dict(data.get("train") or {})
    train.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return RunConfig(name, model, _loss(data.get("loss"), where), _section(LoopConfig, train, "train", where))
