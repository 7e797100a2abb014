"""Natural order of names: ``2.obj`` before ``10.obj`` (digit runs compare as numbers)."""
from __future__ import annotations

import re

__all__ = ["natural_key"]

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> list:
    """Sort key of ``text``: text and digit runs alternate (``re.split`` keeps that order), so keys always compare."""
    return [int(t) if t.isdigit() else t for t in _DIGITS.split(text)]
