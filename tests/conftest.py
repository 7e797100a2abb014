"""Shared fixtures: where the real data lives (``../shared/data`` or $BODYDATA_SHARED_DATA), and the guard that
keeps one test's process state (thread counts, environment, working folder, template cache) from reaching the next."""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
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


# ---------------------------------------------------------------------------------------------- process state
@dataclass
class ProcessState:
    """What a test may change in the pytest process and must not hand to the next test."""

    environ: dict[str, str]
    cwd: str
    torch_threads: int | None  # None while torch is not imported
    threadpools: list[dict] = field(default_factory=list)  # threadpoolctl.threadpool_info() of the loaded libraries


_PYTEST_OWN = "PYTEST_CURRENT_TEST"  # pytest sets it for every phase of every test


def process_state() -> ProcessState:
    """Snapshot of the process state a test can leak (see :class:`ProcessState`)."""
    torch = sys.modules.get("torch")
    pools: list[dict] = []
    if "threadpoolctl" in sys.modules or "numpy" in sys.modules:
        from threadpoolctl import threadpool_info

        pools = threadpool_info()
    return ProcessState(dict(os.environ), os.getcwd(), torch.get_num_threads() if torch is not None else None, pools)


def restore_process_state(state: ProcessState) -> None:
    """Put back the environment, working folder and thread counts of ``state``.

    Libraries loaded after the snapshot keep their own counts (they were never part of the state).
    """
    for key in set(os.environ) - set(state.environ) - {_PYTEST_OWN}:
        del os.environ[key]
    for key, value in state.environ.items():
        if key != _PYTEST_OWN and os.environ.get(key) != value:
            os.environ[key] = value
    if os.getcwd() != state.cwd:
        os.chdir(state.cwd)
    torch = sys.modules.get("torch")
    if torch is not None and state.torch_threads is not None and torch.get_num_threads() != state.torch_threads:
        torch.set_num_threads(state.torch_threads)
    if state.threadpools:
        from threadpoolctl import threadpool_info, threadpool_limits

        before = {p["filepath"]: p["num_threads"] for p in state.threadpools}
        changed = [p for p in threadpool_info()
                   if p["filepath"] in before and p["num_threads"] != before[p["filepath"]]]
        if changed:
            threadpool_limits(limits=[{**p, "num_threads": before[p["filepath"]]} for p in changed])


@pytest.fixture(scope="session")
def keep_process_state():
    """A context manager for module- and session-scoped fixtures, which run before the per-test guard takes its
    snapshot: the process state (:class:`ProcessState`) is put back when the block ends."""

    @contextlib.contextmanager
    def kept():
        state = process_state()
        try:
            yield
        finally:
            restore_process_state(state)

    return kept


@pytest.fixture(scope="session", autouse=True)
def _private_template_cache(tmp_path_factory):
    """Built-in templates are cached in a folder of this session, not in the user's ~/.cache (worker processes
    inherit the variable)."""
    old = os.environ.get("BODYDATA_CACHE")
    os.environ["BODYDATA_CACHE"] = str(tmp_path_factory.mktemp("bodydata_cache"))
    yield
    if old is None:
        os.environ.pop("BODYDATA_CACHE", None)
    else:
        os.environ["BODYDATA_CACHE"] = old


@pytest.fixture(autouse=True)
def _no_leaked_process_state():
    """Every test starts from the state the previous one started from: e.g. ``limit_threads(1)`` in one test
    (which sets thread environment variables, BLAS and torch counts) made a later template build differ."""
    from bodydata.worker_cache import clear_all

    state = process_state()
    yield
    restore_process_state(state)
    clear_all()  # no prefactored solver or registrar outlives the test that built it
