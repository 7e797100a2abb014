"""Architectures by name: each is a class with a ``Config`` dataclass (its section of the run's config) and ``build``.

A user adds their own by decorating a class with ``@register_architecture("name")``; ``bodydata train --arch name``
and the config's ``model.arch`` then find it.
"""
from __future__ import annotations

from typing import Callable

from bodydata.errors import BodydataError

__all__ = ["register_architecture", "get_architecture", "architecture_names", "ArchitectureError", "make_config",
           "config_dict", "build_network"]

_ARCHITECTURES: dict[str, type] = {}


class ArchitectureError(BodydataError):
    """Unknown architecture name, or a run/checkpoint that does not fit the architecture asked for."""


def register_architecture(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        cls.arch = name
        _ARCHITECTURES[name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    from bodydata.model import dhnn, meshvae, pca  # noqa: F401  (registration side effect)


def architecture_names() -> list[str]:
    _load_builtin()
    return sorted(_ARCHITECTURES)


def get_architecture(name: str) -> type:
    _load_builtin()
    if name not in _ARCHITECTURES:
        raise ArchitectureError(f"unknown architecture {name!r} (known: {', '.join(sorted(_ARCHITECTURES))})")
    return _ARCHITECTURES[name]


def make_config(arch: str, section: dict | None, where: str = "") -> object:
    """The architecture's config dataclass from its config section; unknown keys and bad values are one-line errors."""
    from bodydata.config_section import section_from_mapping

    return section_from_mapping(get_architecture(arch).Config, section, arch, where, ArchitectureError)


def config_dict(cfg: object) -> dict:
    """A config dataclass as plain YAML-able values (tuples as lists)."""
    import dataclasses

    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def build_network(arch: str, cfg: object, ctx) -> "object":
    """An untrained network of ``arch`` for ``ctx`` (:class:`~bodydata.model.base.ModelContext`)."""
    return get_architecture(arch)(ctx, cfg)
