"""Pipeline files and `bodydata run`: validation, the registry, chaining, --from/--only, exit status and summary."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import pipeline_test_stages as T  # noqa: E402

from bodydata.cli.main import cli  # noqa: E402
from bodydata.pipeline.manifest import read_rows  # noqa: E402
from bodydata.pipeline.runner import (  # noqa: E402
    PipelineError,
    builtin_pipelines_dir,
    load_pipeline,
    register_stage,
    resolve_stage,
    run_pipeline,
    stage_names,
)

REPO = HERE.parents[1]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_shipped_pipelines_parse():
    names = {p.stem for p in (REPO / "pipelines").glob("*.yaml")}
    assert {"anny-demo", "paper-faust-scape"} <= names
    assert builtin_pipelines_dir() == REPO / "pipelines"
    demo = load_pipeline(REPO / "pipelines" / "anny-demo.yaml")
    assert demo.name == "anny-demo" and demo.steps[0].stage == "synth"
    paper = load_pipeline(REPO / "pipelines" / "paper-faust-scape.yaml", expand_env=False)
    assert [s.name for s in paper.steps][0] == "faust-scan"
    # A shipped pipeline names only stages that exist, so it runs as far as its data allows.
    for pipe in (demo, paper):
        for step in pipe.steps:
            assert step.stage in stage_names(), (pipe.name, step.stage)


@pytest.mark.parametrize(
    "body, message",
    [
        ("stages: []\n", "non-empty list"),
        ("stage: [a]\n", "unknown key"),
        ("stages:\n  - name: a\n    optionz: {}\n", "unknown key"),
        ("stages:\n  - name: a\n  - name: a\n", "used twice"),
        ("stages:\n  - name: a\n    input: b\n", "not an earlier step"),
        ("stages:\n  - name: ../a\n", "folder-safe"),
        ("stages:\n  - name: a\n    options: {root: '${BODYDATA_TEST_UNSET_VAR}'}\n", "BODYDATA_TEST_UNSET_VAR is not set"),
        ("stages: [a\n", "not valid YAML"),
    ],
)
def test_invalid_pipeline_files(tmp_path, monkeypatch, body, message):
    monkeypatch.delenv("BODYDATA_TEST_UNSET_VAR", raising=False)
    with pytest.raises(PipelineError, match=message):
        load_pipeline(_write(tmp_path / "p.yaml", body))


def test_env_expansion_defaults_and_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("BODYDATA_TEST_DIR", "/data/x")
    p = load_pipeline(_write(tmp_path / "p.yaml", "stages:\n  - name: a\n    stage: mesh-stats\n    options:\n"
                                                  "      input: ${BODYDATA_TEST_DIR}/faust\n      pattern: ${NOPE_UNSET:-*.ply}\n"))
    assert dict(p.steps[0].options) == {"input": "/data/x/faust", "pattern": "*.ply"}
    assert resolve_stage("mesh-stats").__name__ == "make_stage"
    with pytest.raises(PipelineError, match="unknown stage 'nope'"):
        resolve_stage("nope")
    with pytest.raises(PipelineError, match="cannot import"):
        resolve_stage("no_such_module_xyz:f")
    import bodydata.pipeline.runner as runner

    monkeypatch.setattr(runner, "STAGES", dict(runner.STAGES))  # keep the global registry clean
    register_stage("test-numbers", "pipeline_test_stages:make_number_stage")
    assert resolve_stage("test-numbers") is T.make_number_stage
    with pytest.raises(PipelineError, match="package.module:factory"):
        register_stage("x", "no_colon")


def _two_step(tmp_path: Path, bad: bool = False) -> Path:
    T.write_noisy_spheres(tmp_path / "meshes", 5)
    if bad:
        (tmp_path / "meshes" / "sphere_001.ply").write_text("not a mesh")
    return _write(tmp_path / "p.yaml", f"""
pipeline: two
stages:
  - name: area
    stage: pipeline_test_stages:make_area_stage
    options: {{folder: "{tmp_path / 'meshes'}"}}
  - name: stats
    stage: mesh-stats
    input: null
    options: {{input: "{tmp_path / 'meshes'}", pattern: "*.ply"}}
""")


def test_run_pipeline_chain_resume_from_only(tmp_path):
    pipe = load_pipeline(_two_step(tmp_path))
    work = tmp_path / "work"
    s = run_pipeline(pipe, work, scheduler="synchronous", progress=False, echo=None)
    assert [(x.stage, x.done) for x in s] == [("area", 5), ("mesh-stats", 5)]
    stats = {r.item: r for r in read_rows(work / "stats")}
    area = {r.item: r for r in read_rows(work / "area")}
    for k in range(5):
        assert abs(float(stats[f"sphere_{k:03d}.ply"].columns["area"]) - float(area[f"sphere_{k:03d}"].columns["area"])) < 1e-12
    assert json.loads((work / "pipeline.json").read_text())["stages"][1]["stage"] == "mesh-stats"
    s = run_pipeline(pipe, work, scheduler="synchronous", progress=False, echo=None)
    assert [(x.done, x.skipped) for x in s] == [(0, 5), (0, 5)]
    s = run_pipeline(pipe, work, scheduler="synchronous", only="stats", progress=False, echo=None)
    assert [x.stage for x in s] == ["mesh-stats"]
    s = run_pipeline(pipe, work, scheduler="synchronous", from_step="area", progress=False, echo=None)
    assert len(s) == 2
    with pytest.raises(PipelineError, match="has not run yet"):
        run_pipeline(pipe, tmp_path / "fresh", scheduler="synchronous", only="stats", progress=False, echo=None)
    with pytest.raises(PipelineError, match="no step named"):
        run_pipeline(pipe, work, scheduler="synchronous", only="nope", progress=False, echo=None)


def test_cli_corrupt_mesh_exit_status_and_summary(tmp_path, monkeypatch):
    path = _two_step(tmp_path, bad=True)
    monkeypatch.setenv("BODYDATA_SCHEDULER", "synchronous")
    res = CliRunner().invoke(cli, ["run", str(path), "--workdir", str(tmp_path / "w"), "--no-progress"])
    assert res.exit_code == 1, res.output
    assert "area: 4 done, 0 skipped, 1 failed" in res.output
    assert "failed sphere_001: MeshError:" in res.output
    assert res.output.strip().splitlines()[-1] == "pipeline two: 8 done, 0 skipped, 2 failed"
    T.write_noisy_spheres(tmp_path / "fix", 2)
    (tmp_path / "fix" / "sphere_001.ply").replace(tmp_path / "meshes" / "sphere_001.ply")
    res = CliRunner().invoke(cli, ["run", str(path), "--workdir", str(tmp_path / "w"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == "pipeline two: 2 done, 8 skipped, 0 failed"


def test_cli_config_errors_exit_2(tmp_path):
    res = CliRunner().invoke(cli, ["run", str(_write(tmp_path / "p.yaml", "stages:\n  - name: a\n    stage: nope\n"))])
    assert res.exit_code == 2 and "unknown stage 'nope'" in res.output
    res = CliRunner().invoke(cli, ["run", "no-such-pipeline"])
    assert res.exit_code == 2 and "anny-demo" in res.output
    res = CliRunner().invoke(cli, ["run", "--list-stages"])
    assert res.exit_code == 0 and "mesh-stats" in res.output


def test_nothing_to_do_starts_no_cluster(tmp_path):
    pipe = load_pipeline(_two_step(tmp_path))
    run_pipeline(pipe, tmp_path / "w", scheduler="synchronous", progress=False, echo=None)
    lines: list[str] = []
    s = run_pipeline(pipe, tmp_path / "w", scheduler="local", workers=2, progress=False, echo=lines.append)
    assert [(x.done, x.skipped) for x in s] == [(0, 5), (0, 5)]
    assert not any(line.startswith("started") for line in lines), lines


def test_steps_reading_a_step_whose_items_all_failed_are_not_run(tmp_path):
    # Issue #14 item 6: a step after one whose every item failed ran anyway and ended with a misleading error.
    (tmp_path / "meshes").mkdir()
    (tmp_path / "meshes" / "sphere_000.ply").write_text("not a mesh")
    path = _write(tmp_path / "p.yaml", f"""
pipeline: broken
stages:
  - name: area
    stage: pipeline_test_stages:make_area_stage
    options: {{folder: "{tmp_path / 'meshes'}"}}
  - name: after
    stage: mesh-stats
  - name: after-after
    stage: mesh-stats
  - name: independent
    stage: mesh-stats
    input: null
    options: {{input: "{tmp_path / 'meshes'}"}}
""")
    res = CliRunner().invoke(cli, ["run", str(path), "--workdir", str(tmp_path / "w"), "--no-progress",
                                   "--scheduler", "synchronous"])
    assert res.exit_code == 1, res.output
    assert "area: 0 done, 0 skipped, 1 failed" in res.output
    assert "after: not run (every item of its input step area failed)" in res.output
    assert "after-after: not run (every item of its input step after failed)" in res.output
    assert "independent: 0 done, 0 skipped, 1 failed" in res.output
    assert not (tmp_path / "w" / "after").exists()
