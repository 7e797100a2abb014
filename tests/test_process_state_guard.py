"""One test's process state (threads, environment, working folder) does not reach the next (issue #13 item 7).

Runs a small inner pytest session, in a subprocess, with this suite's conftest: its first test does what
``tests/pipeline/test_stage_convert.py`` did (``limit_threads(1)``) and more; the second sees none of it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

INNER = '''
import os
import torch
from threadpoolctl import threadpool_info

START = {}


def test_a_records_then_leaks(tmp_path):
    START.update(torch=torch.get_num_threads(), pools=[p["num_threads"] for p in threadpool_info()],
                 cwd=os.getcwd(), env=dict(os.environ))
    assert torch.get_num_threads() == 2
    from bodydata.pipeline.orchestrate import limit_threads

    limit_threads(1)
    os.environ["BODYDATA_LEAK_PROBE"] = "1"
    os.chdir(tmp_path)


def test_b_sees_the_start_state():
    assert torch.get_num_threads() == START["torch"]
    assert [p["num_threads"] for p in threadpool_info()] == START["pools"]
    assert os.getcwd() == START["cwd"]
    own = "PYTEST_CURRENT_TEST"
    assert {k: v for k, v in os.environ.items() if k != own} == {k: v for k, v in START["env"].items() if k != own}
'''


def test_limit_threads_env_and_cwd_do_not_leak_into_the_next_test(tmp_path):
    (tmp_path / "conftest.py").write_text((HERE / "conftest.py").read_text())
    (tmp_path / "test_inner.py").write_text(INNER)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    # two threads to start from, so that limit_threads(1) is a change
    env.update(OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "test_inner.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "2 passed" in res.stdout
