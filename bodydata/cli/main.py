"""The ``bodydata`` command: a Click group whose subcommands live in the sibling modules.

Each module ``bodydata/cli/<topic>.py`` exposes ``COMMANDS`` (a list of click commands or groups);
the group collects them so topics never edit a shared file. Command bodies import their heavy
dependencies (torch, anny) lazily so ``bodydata --help`` stays fast.
"""
from __future__ import annotations

import importlib
import pkgutil

import click

import bodydata


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(bodydata.__version__, prog_name="bodydata")
def cli() -> None:
    """Turn public 3D human body collections into one shared-connectivity training set, and train and
    evaluate the disentangled shape/pose body embedding (Jiang et al., TVCG 2020)."""


def _register() -> None:
    import bodydata.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name in ("main",) or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bodydata.cli.{info.name}")
        for command in getattr(module, "COMMANDS", []):
            cli.add_command(command)
    from bodydata.cli._help import attach

    attach(cli)


_register()
