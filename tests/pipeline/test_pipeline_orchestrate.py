"""Running stages: resume logic, failures recorded, dask local cluster (loopback, thread limits, retries, lost workers)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import pipeline_test_stages as T  # noqa: E402

from bodydata.errors import BodydataError  # noqa: E402
from bodydata.pipeline.manifest import JOURNAL_NAME, read_rows  # noqa: E402
from bodydata.pipeline.orchestrate import InlineExecutor, open_executor, run_stage  # noqa: E402
from bodydata.pipeline.stage import StageContext  # noqa: E402


def _run(stage, out, executor, **kw):
    return run_stage(stage, StageContext(out_dir=out), executor, progress=False, **kw)


def _journal_events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / JOURNAL_NAME).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def cluster():
    """One 2-process local cluster for this module; worker processes import the test stages through PYTHONPATH."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), *([old] if old else [])])
    try:
        with open_executor("local", workers=2) as ex:
            yield ex
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    assert not _worker_processes(), "dask worker processes were left behind"


def _worker_processes() -> list[psutil.Process]:
    """Child processes except multiprocessing's resource tracker (it lives as long as this process, by design)."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(p.cmdline()):
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


# -- resume logic (inline: fast, deterministic) ---------------------------------------------------------------------
def test_areas_are_correct_and_rerun_skips_everything(tmp_path):
    paths = T.write_noisy_spheres(tmp_path / "in", 6)
    stage = T.make_area_stage(folder=str(tmp_path / "in"))
    out = tmp_path / "out"
    s = _run(stage, out, InlineExecutor())
    assert (s.done, s.skipped, s.failed, s.total) == (6, 0, 0, 6) and s.line() == "6 done, 0 skipped, 0 failed"
    rows = {r.item: r for r in read_rows(out)}
    for p in paths:
        assert np.isclose(float(rows[p.stem].columns["area"]), T.loop_area(p), rtol=1e-12)
        assert np.isclose(np.load(out / f"{p.stem}.npy").sum(), T.loop_area(p), rtol=1e-12)
    assert json.loads((out / "stage.json").read_text())["manifest"] == {"done": 6, "failed": 0}
    s2 = _run(stage, out, InlineExecutor())
    assert (s2.done, s2.skipped, s2.failed) == (0, 6, 0)


def test_changed_input_touched_input_deleted_output_and_new_options(tmp_path):
    paths = T.write_noisy_spheres(tmp_path / "in", 5)
    stage = T.make_area_stage(folder=str(tmp_path / "in"))
    out = tmp_path / "out"
    _run(stage, out, InlineExecutor())
    # 0: new bytes -> redone; 1: same bytes, new mtime -> re-hashed and skipped; 2: output deleted -> redone
    T.write_noisy_spheres(tmp_path / "tmp", 1, seed=99)[0].replace(paths[0])
    st = os.stat(paths[1])
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    (out / f"{paths[2].stem}.npy").unlink()
    s = _run(stage, out, InlineExecutor())
    assert (s.done, s.skipped, s.failed) == (2, 3, 0)
    redone = {e["item"] for e in _journal_events(out)[5:] if e["event"] == "finished"}
    assert redone == {paths[0].stem, paths[2].stem}
    assert np.isclose(float({r.item: r for r in read_rows(out)}[paths[0].stem].columns["area"]), T.loop_area(paths[0]))
    s = _run(stage, out, InlineExecutor())  # the refreshed fingerprint now skips without re-hashing
    assert (s.done, s.skipped) == (0, 5)
    s = _run(T.make_area_stage(folder=str(tmp_path / "in"), version_note="new option"), out, InlineExecutor())
    assert (s.done, s.skipped) == (5, 0)


def test_corrupt_mesh_is_recorded_and_the_rest_are_done(tmp_path):
    T.write_noisy_spheres(tmp_path / "in", 4)
    (tmp_path / "in" / "sphere_002.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 9\n")
    out = tmp_path / "out"
    s = _run(T.make_area_stage(folder=str(tmp_path / "in")), out, InlineExecutor())
    assert (s.done, s.failed) == (3, 1) and s.line() == "3 done, 0 skipped, 1 failed"
    rows = {r.item: r for r in read_rows(out)}
    assert rows["sphere_002"].status == "failed" and rows["sphere_002"].reason.startswith("MeshError: ")
    assert "sphere_002.ply" in rows["sphere_002"].reason
    assert s.failures == [("sphere_002", rows["sphere_002"].reason)]
    s = _run(T.make_area_stage(folder=str(tmp_path / "in")), out, InlineExecutor())
    assert (s.done, s.skipped, s.failed) == (0, 3, 1)  # failed rows are retried on every run


def test_inline_retries_transient_errors(tmp_path):
    stage = T.make_number_stage(count=3, flaky_items=[1], marker_dir=str(tmp_path))
    s = _run(stage, tmp_path / "a", InlineExecutor(), retries=1)
    assert (s.done, s.failed) == (3, 0)
    stage = T.make_number_stage(count=3, flaky_items=[1], marker_dir=str(tmp_path / "m"))
    (tmp_path / "m").mkdir()
    s = _run(stage, tmp_path / "b", InlineExecutor(), retries=0)
    assert s.failures == [("n001", "OSError: transient failure (first attempt)")]


# -- dask local cluster ---------------------------------------------------------------------------------------------
def test_dask_results_equal_inline_results(tmp_path, cluster):
    T.write_noisy_spheres(tmp_path / "in", 8)
    stage = T.make_area_stage(folder=str(tmp_path / "in"))
    _run(stage, tmp_path / "inline", InlineExecutor())
    s = _run(stage, tmp_path / "dask", cluster)
    assert (s.done, s.failed) == (8, 0)
    for k in range(8):
        name = f"sphere_{k:03d}.npy"
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "inline" / name).read_bytes()
    a = {r.item: (r.input_hash, r.columns) for r in read_rows(tmp_path / "inline")}
    b = {r.item: (r.input_hash, r.columns) for r in read_rows(tmp_path / "dask")}
    assert a == b


def test_dask_corrupt_input_bad_item_and_flaky_item(tmp_path, cluster):
    stage = T.make_number_stage(count=12, bad_items=[4], flaky_items=[7], marker_dir=str(tmp_path))
    s = _run(stage, tmp_path / "out", cluster, retries=2)
    assert (s.done, s.failed) == (11, 1)
    assert s.failures == [("n004", "BodydataError: item n004: refused on purpose")]
    assert (tmp_path / "flaked-n007").exists()


def test_worker_killed_mid_task_the_run_completes(tmp_path, cluster):
    stage = T.make_number_stage(count=10, crash_items=[3], marker_dir=str(tmp_path), sleep=0.05, report_pid=True)
    s = _run(stage, tmp_path / "out", cluster)
    assert (s.done, s.failed) == (10, 0)
    dead_pid = int((tmp_path / "crashed-n003").read_text())
    rows = {r.item: r for r in read_rows(tmp_path / "out")}
    assert int(rows["n003"].columns["pid"]) != dead_pid  # finished by another (or restarted) worker process
    assert not psutil.pid_exists(dead_pid) or psutil.Process(dead_pid).status() == psutil.STATUS_ZOMBIE
    assert len(cluster.client.nthreads()) >= 1


def test_dask_error_without_retry_and_poison_item_are_failed_rows(tmp_path, cluster):
    stage = T.make_number_stage(count=6, flaky_items=[1], poison_items=[4], marker_dir=str(tmp_path))
    s = _run(stage, tmp_path / "out", cluster, retries=0)
    assert (s.done, s.failed) == (4, 2)
    reasons = dict(s.failures)
    assert reasons["n001"] == "OSError: transient failure (first attempt)"
    assert reasons["n004"].startswith("KilledWorker: ")  # dask gave up after its allowed worker deaths


def test_workers_limit_threads_and_listen_on_loopback_only(tmp_path, cluster):
    s = _run(T.make_env_stage(count=4), tmp_path / "out", cluster)
    assert s.done == 4
    for r in read_rows(tmp_path / "out"):
        assert r.columns["omp"] == "1" and int(r.columns["torch_threads"]) == 1 and int(r.columns["blas_max"]) == 1
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    listening = [c.laddr for p in procs for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening, "expected the scheduler, nannies and workers to listen"
    assert all(addr.ip == "127.0.0.1" for addr in listening), listening


def _profiler_state(dask_worker):
    return sorted(k for k in dask_worker.periodic_callbacks if k.startswith("profile"))


def test_local_workers_run_without_dasks_statistical_profiler(cluster):
    # the profiler keeps a call tree per second of every task's stack: it grew the workers' memory with the
    # number of meshes (benchmarks/bench_orchestrate.py memory). Also after a worker was killed and restarted.
    states = cluster.client.run(_profiler_state)
    assert len(states) == 2 and all(s == [] for s in states.values()), states


def test_existing_scheduler_address(tmp_path, cluster):
    address = cluster.client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    with open_executor(address) as ex:
        s = _run(T.make_number_stage(count=5), tmp_path / "out", ex)
    assert (s.done, s.failed) == (5, 0)


def test_unreachable_scheduler_is_a_one_line_error():
    with pytest.raises(BodydataError, match="cannot reach the dask scheduler tcp://127.0.0.1:9"):
        with open_executor("tcp://127.0.0.1:9", connect_timeout="1s"):
            pass


def test_synchronous_names_and_env(monkeypatch):
    monkeypatch.setenv("BODYDATA_SCHEDULER", "synchronous")
    with open_executor() as ex:
        assert isinstance(ex, InlineExecutor)
    monkeypatch.delenv("BODYDATA_SCHEDULER")
    with open_executor(workers=0) as ex:
        assert isinstance(ex, InlineExecutor)


def test_scheduler_without_workers_is_an_error():
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as empty:
        with pytest.raises(BodydataError, match="has no workers"):
            with open_executor(empty.scheduler_address, connect_timeout="1s"):
                pass
