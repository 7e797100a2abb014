"""`kill -9` of a running `bodydata run` (the whole process group), then a re-run: it completes, outputs are
byte-identical to an uninterrupted run, and items finished before the kill are not redone."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import pipeline_test_stages as T  # noqa: E402

from bodydata.pipeline.manifest import JOURNAL_NAME, read_rows  # noqa: E402
from bodydata.pipeline.orchestrate import InlineExecutor, run_stage  # noqa: E402
from bodydata.pipeline.stage import StageContext  # noqa: E402

COUNT, SLEEP = 40, 0.1
BODYDATA = [sys.executable, "-c", "from bodydata.cli.main import cli; cli()"]


def _events(out: Path) -> list[dict]:
    if not (out / JOURNAL_NAME).exists():
        return []
    return [json.loads(x) for x in (out / JOURNAL_NAME).read_text().splitlines() if x.endswith("}")]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    env.pop("BODYDATA_SCHEDULER", None)
    return env


def test_kill_minus_9_then_resume(tmp_path):
    pipe = tmp_path / "slow.yaml"
    pipe.write_text(f"pipeline: slow\nstages:\n  - name: numbers\n    stage: pipeline_test_stages:make_number_stage\n"
                    f"    options: {{count: {COUNT}, sleep: {SLEEP}}}\n")
    work = tmp_path / "work"
    out = work / "numbers"
    cmd = [*BODYDATA, "run", str(pipe), "--workdir", str(work), "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, env=_env(), start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    family: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(_events(out)) < 10:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the run made no progress"
            family |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
            time.sleep(0.05)
        family |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)} | {proc.pid}
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    first = {e["item"] for e in _events(out) if e["event"] == "finished"}
    assert 10 <= len(first) < COUNT, "the kill should land mid-way"
    # everything of the killed run dies with its process group (no orphaned dask workers)
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in family):
        assert time.monotonic() < deadline, "processes of the killed run survived"
        time.sleep(0.1)

    n_before = len(_events(out))
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    second = [e["item"] for e in _events(out)[n_before:] if e["event"] == "finished"]
    assert not first & set(second), "items finished before the kill were redone"
    assert first | set(second) == {f"n{i:03d}" for i in range(COUNT)}
    assert f"numbers: {len(second)} done, {len(first)} skipped, 0 failed" in res.stdout

    # an uninterrupted run of the same stage (inline) gives the same bytes and the same manifest content
    ref = tmp_path / "ref"
    run_stage(T.make_number_stage(count=COUNT, sleep=SLEEP), StageContext(out_dir=ref), InlineExecutor(), progress=False)
    for i in range(COUNT):
        name = f"n{i:03d}.npy"
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    key = lambda rows: [(r.item, r.status, r.input_hash, r.outputs, r.columns) for r in rows]  # noqa: E731
    assert key(read_rows(out)) == key(read_rows(ref))
