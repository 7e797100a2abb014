"""The status vocabulary of every manifest row: ``done`` or ``failed`` (``pending`` only in memory).

Older manifests wrote ``ok`` for a validated source row; readers accept it as ``done`` so that files written
before the vocabulary was unified stay usable.
"""
from __future__ import annotations

STATUS_DONE = "done"
STATUS_FAILED = "failed"
STATUS_PENDING = "pending"  # between discovery and validation; never written to a file
STATUSES = (STATUS_DONE, STATUS_FAILED)

_LEGACY = {"ok": STATUS_DONE}


def normalise_status(word: str | None) -> str:
    """The canonical status for a word read from a file (``ok`` -> ``done``; empty -> ``done``).

    An empty status means the row came from a hand-written list with no status column: usable.
    """
    w = (word or "").strip().lower()
    if not w:
        return STATUS_DONE
    return _LEGACY.get(w, w)


def is_done(word: str | None) -> bool:
    """True when a row with this status may be used by the next stage."""
    return normalise_status(word) == STATUS_DONE
