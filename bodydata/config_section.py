"""A dataclass from one section of a YAML config: unknown keys, wrong types and bad values as one-line errors.

One rule for every config section (the trainer's ``train`` and ``loss``, each architecture's own section), so a typo
reads the same wherever it is made: ``<file>: config key 'train.epochz' does not exist (known: ...)``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from bodydata.errors import BodydataError

__all__ = ["section_from_mapping"]

T = TypeVar("T")


def _number(v: Any, kind: str) -> Any:
    if isinstance(v, bool):  # YAML's true/false are not numbers here
        raise ValueError(v)
    if kind == "float":
        return float(v)
    if float(v) != int(float(v)):
        raise ValueError(v)
    return int(v)


def section_from_mapping(cls: type[T], data: Any, name: str, where: str = "",
                         error: type[BodydataError] = BodydataError) -> T:
    """``cls(**data)`` for a config dataclass. Fields annotated ``int``/``float``/``str`` are converted (``"3"`` -> 3;
    ``true`` or ``3.5`` for an int is refused); ``where`` prefixes messages (e.g. ``"run.yaml: "``)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{where}config section '{name}' must be a mapping, got {type(data).__name__}")
    fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise error(f"{where}config key '{name}.{unknown[0]}' does not exist (known: {', '.join(fields)})")
    clean = {}
    for k, v in data.items():
        t = fields[k]
        try:
            clean[k] = _number(v, t) if t in ("int", "float") else (str(v) if t == "str" else v)
        except (TypeError, ValueError):
            raise error(f"{where}config key '{name}.{k}': expected {t}, got {v!r}") from None
    try:
        return cls(**clean)
    except (TypeError, ValueError) as exc:
        raise error(f"{where}config section '{name}': {exc}") from None
