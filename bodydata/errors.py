"""Exceptions with one-line messages that name the offending file and the reason."""
from __future__ import annotations

from pathlib import Path


class BodydataError(Exception):
    """Base class of every error bodydata raises on purpose."""


class MeshError(BodydataError, ValueError):
    """A mesh file or array is unusable. ``str(err)`` is ``"<path>: <reason>"`` on one line."""

    def __init__(self, path: str | Path | None, reason: str):
        self.path = None if path is None else str(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path or '<array>'}: {self.reason}")


class TemplateError(BodydataError, ValueError):
    """A template folder is missing pieces or inconsistent."""
