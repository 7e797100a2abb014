"""Shared fixtures: where the real data lives (``../shared/data`` or $BODYDATA_SHARED_DATA)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    env = os.environ.get("BODYDATA_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real test meshes; tests that use it skip when the folder is absent."""
    root = shared_data_dir()
    if not root.is_dir():
        pytest.skip(f"real data folder {root} is absent (set BODYDATA_SHARED_DATA to run this test)")
    return root


def require_shared(*parts: str) -> Path:
    """Path under the shared data folder, or skip the calling test with the reason."""
    path = shared_data_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data {path} is absent (set BODYDATA_SHARED_DATA to run this test)")
    return path


@pytest.fixture(scope="session")
def anny_lite_template(tmp_path_factory):
    """The anny-lite template (1,229 vertices, a :class:`bodydata.templates.template.Template`), built
    once per session through a temporary cache folder. Treat it as read-only (it is shared)."""
    from bodydata.templates.template import load_template

    return load_template("anny-lite", cache_dir=tmp_path_factory.mktemp("template_cache"))


@pytest.fixture(scope="session")
def anny_lite_template_dir(tmp_path_factory, anny_lite_template) -> Path:
    """A folder holding the saved anny-lite template (``Template.load`` reads it)."""
    folder = tmp_path_factory.mktemp("anny_lite_template")
    anny_lite_template.save(folder)
    return folder
