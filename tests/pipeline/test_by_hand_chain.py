"""The stages chain by hand with the commands alone, and every command's exit status says what happened.

synth -> sources scan -> neutralize -> build-dataset on anny-lite bodies (issue #14 items 1, 4, 5, 8).
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from bodydata.cli.main import cli

TEMPLATE = "anny-lite"


def _run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Each command's output manifest is the next command's input."""
    root = tmp_path_factory.mktemp("chain")
    res = {}
    res["synth"] = _run("synth", "anny", "--identities", 2, "--poses", 2, "--topology", "notoes_collapse10pc",
                        "--seed", 3, "--no-sheet", "--quiet", "--out", root / "synth")
    res["scan"] = _run("sources", "scan", "--source", "anny", "--root", root / "synth", "--out", root / "one.csv",
                       "--quiet")
    res["neutralize"] = _run("neutralize", "--manifest", root / "one.csv", "--template", TEMPLATE, "--target", "anny",
                             "--out", root / "neut1", "--no-png", "--quiet")
    res["build"] = _run("build-dataset", "--inputs", root / "one.csv", "--neutral", root / "neut1" / "neutral.csv",
                        "--template", TEMPLATE, "--out", root / "ds1", "--split", "subject", "--test-neutral", 1,
                        "--test-pose", 1, "--workers", 0, "--quiet")
    cfg = root / "small.yaml"
    cfg.write_text("dhnn: {encoder_widths: [32, 32], branch_widths: [32, 64]}\ntrain: {batch_size: 4, threads: 1}\n")
    res["train"] = _run("train", "--dataset", root / "ds1", "--out", root / "run1", "--config", cfg, "--epochs", 2,
                        "--quiet")
    res["evaluate"] = _run("evaluate", "--run", root / "run1", "--dataset", root / "ds1", "--out", root / "rep1",
                           "--iterations", 3, "--no-figures", "--no-body-model")
    return root, res


def test_by_hand_chain_runs_with_the_commands_alone(chain):
    root, res = chain
    for step, r in res.items():
        assert r.exit_code == 0, f"{step}: {r.output}"
    assert "2 done, 0 failed" in res["neutralize"].output
    assert (root / "run1" / "checkpoints" / "last.safetensors").is_file() and (root / "rep1" / "report.md").is_file()
    with open(root / "ds1" / "pairs.csv", newline="") as fh:
        pairs = list(csv.DictReader(fh))
    by_id = {p["id"]: p for p in pairs}
    poses = [p for p in pairs if p["role"] == "pose"]
    assert len(poses) == 4
    # Every pose pairs with its subject's constructed neutral from neut1/neutral.csv.
    for p in poses:
        assert p["neutral_id"] == f"anny-neutral-{p['subject']}", p
        assert Path(by_id[p["neutral_id"]]["path"]) == (root / "neut1" / "neutral" / f"{p['subject']}.ply").resolve()


def test_neutral_csv_is_a_source_row_manifest(chain):
    from bodydata.manifest.source_rows import read_source_rows

    root, _ = chain
    rows = read_source_rows(root / "neut1" / "neutral.csv")
    assert [(r.id, r.kind, r.status, r.subject) for r in rows] == [
        (f"anny-neutral-{s}", "constructed_neutral", "done", str(s)) for s in range(2)]
    assert all(Path(r.path).is_file() and len(r.sha256) == 64 for r in rows)
    assert all(float(r.extra["residual_after_mm"]) >= 0 for r in rows)


def test_empty_manifest_is_a_one_line_error_exit_2(tmp_path):
    (tmp_path / "empty.csv").touch()
    res = _run("build-dataset", "--inputs", tmp_path / "empty.csv", "--template", TEMPLATE, "--out", tmp_path / "d")
    assert res.exit_code == 2, res.output
    assert "empty.csv: empty file" in res.output and isinstance(res.exception, SystemExit)  # no traceback
    assert not (tmp_path / "d").exists()


def test_unknown_template_is_reported_first_and_leaves_no_folder(chain, tmp_path):
    root, _ = chain
    res = _run("build-dataset", "--inputs", root / "one.csv", "--template", "no-such-template", "--out",
               tmp_path / "d", "--test-neutral", 50)
    assert res.exit_code == 2 and "no-such-template" in res.output and "test pairs" not in res.output, res.output
    assert not (tmp_path / "d").exists()


def test_impossible_split_exits_2_without_leaving_an_empty_folder(chain, tmp_path):
    root, _ = chain
    res = _run("build-dataset", "--inputs", root / "one.csv", "--template", TEMPLATE, "--out", tmp_path / "d",
               "--test-neutral", 50, "--workers", 0, "--quiet")
    assert res.exit_code == 2 and "50 neutral test pairs requested" in res.output, res.output
    assert not (tmp_path / "d").exists()


def test_neutralize_exits_1_when_every_subject_failed(chain, tmp_path):
    root, _ = chain
    # Meshes of another connectivity: every subject fails (no usable pose).
    rows = list(csv.DictReader(open(root / "one.csv", newline="")))
    bad = tmp_path / "bad.ply"
    bad.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
                   "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    with open(tmp_path / "m.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "path": str(bad)} for r in rows)
    res = _run("neutralize", "--manifest", tmp_path / "m.csv", "--template", TEMPLATE, "--target", "anny", "--out",
               tmp_path / "n", "--no-png", "--quiet")
    assert res.exit_code == 1, res.output
    assert "0 done, 2 failed" in res.output


def test_build_dataset_exits_1_when_rows_are_left_out(chain, tmp_path):
    root, _ = chain
    # A pose row of a subject without a neutral: left out (pairing), the rest is built.
    rows = list(csv.DictReader(open(root / "one.csv", newline="")))
    orphan = {**next(r for r in rows if r["kind"] == "generated"), "id": "anny/orphan", "subject": "77"}
    with open(tmp_path / "more.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerow(orphan)
    res = _run("build-dataset", "--inputs", root / "one.csv", tmp_path / "more.csv", "--template", TEMPLATE, "--out",
               tmp_path / "d", "--split", "subject", "--test-neutral", 1, "--test-pose", 1, "--workers", 0, "--quiet")
    assert res.exit_code == 1, res.output
    assert "1 input rows left out" in res.output and "anny/orphan" in res.output
