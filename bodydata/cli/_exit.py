"""Exit statuses every command shares: 0 all items done, 1 some (or all) items failed, 2 cannot start, 130 interrupted."""
from __future__ import annotations

import click

EXIT_DONE = 0
EXIT_SOME_FAILED = 1
EXIT_CANNOT_START = 2
EXIT_INTERRUPTED = 130


class CannotStart(click.ClickException):
    """Bad input found before any item ran (unreadable manifest, unknown template, invalid option): status 2."""

    exit_code = EXIT_CANNOT_START


def exit_for_failures(n_failed: int) -> None:
    """Leave with status 1 when any item failed (after the summary was printed); return otherwise."""
    if n_failed:
        raise SystemExit(EXIT_SOME_FAILED)
