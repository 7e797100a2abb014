"""Typed stage options: a pipeline's options are checked with the CLI's types and ranges before anything runs."""
from __future__ import annotations

import dataclasses

import click
import pytest
import yaml
from click.testing import CliRunner

from bodydata.cli.main import cli
from bodydata.pipeline.stage_options import (
    DatasetOptions,
    EvaluateOptions,
    OptionsError,
    SynthOptions,
    check_signature,
    parse_options,
)


@pytest.mark.parametrize("raw, message", [
    ({"identities": "eight"}, "option identities: 'eight' is not a valid integer"),
    ({"identities": -3}, "option identities: -3 is not in the range x>=1"),
    ({"identities": 2.5}, "option identities: expected int, got 2.5"),
    ({"identities": True}, "option identities: expected int, got True"),
    ({"topology": "cube"}, "option topology: 'cube' is not one of"),
    ({"also_topology": ["subdiv", "cube"]}, "option also_topology: 'cube' is not one of"),
    ({"identitees": 3}, r"unknown option\(s\) identitees \(known: identities, poses"),
])
def test_bad_synth_options_are_one_line_errors(raw, message):
    with pytest.raises(OptionsError, match=message) as err:
        parse_options(SynthOptions, raw)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("raw, message", [
    ({"split": "paper", "test_subjects": "faust/[67]"}, "option test_subjects: .*subject split"),
    ({"split": "subject", "test_subjects": "faust/["}, "option test_subjects: .*not a regular expression"),
])
def test_bad_test_subjects_are_refused_when_the_options_are_read(raw, message):
    with pytest.raises(OptionsError, match=message):
        parse_options(DatasetOptions, raw)
    assert parse_options(DatasetOptions, {"test_subjects": "faust/[67]"}).split == "subject"


def test_build_dataset_cli_refuses_test_subjects_without_the_subject_split(tmp_path):
    man = tmp_path / "m.csv"
    man.write_text("id,source,kind,path,topology\n")
    res = CliRunner().invoke(cli, ["build-dataset", "--inputs", str(man), "--template", "anny-lite", "--out",
                                   str(tmp_path / "ds"), "--test-subjects", "faust/[67]"])
    assert res.exit_code == 2 and "subject split" in res.output and not (tmp_path / "ds").exists()


def test_good_options_are_converted_as_on_the_command_line():
    o = parse_options(SynthOptions, {"identities": "8", "poses": 2, "also_topology": ["subdiv"]})
    assert (o.identities, o.poses, o.seed, o.also_topology) == (8, 2, 0, ["subdiv"])
    assert parse_options(DatasetOptions, {"split": "paper", "test_pose": 0}).test_pose == 0
    with pytest.raises(OptionsError, match="option test_pose: -1 is not in the range x>=0"):
        parse_options(DatasetOptions, {"test_pose": -1})


def test_stages_without_a_class_are_checked_against_their_signature():
    def make_stage(template: str = "anny", limit: int | None = None, sources: str | list[str] | None = None):
        return None

    check_signature(make_stage, {"limit": 3, "sources": ["a.csv"]})
    with pytest.raises(OptionsError, match="option limit: expected int | None, got 'three'"):
        check_signature(make_stage, {"limit": "three"})
    with pytest.raises(OptionsError, match="unknown option"):
        check_signature(make_stage, {"nope": 1})


def _param(command: click.Command, name: str) -> click.Parameter:
    return next(p for p in command.params if p.name == name)


def _same_type(a: click.ParamType, b: click.ParamType) -> bool:
    if isinstance(a, click.IntRange) or isinstance(b, click.IntRange):
        return type(a) is type(b) and (a.min, a.max, a.min_open, a.max_open) == (b.min, b.max, b.min_open, b.max_open)
    if isinstance(a, click.Choice) or isinstance(b, click.Choice):
        return type(a) is type(b) and list(a.choices) == list(b.choices)
    return a.name == b.name


@pytest.mark.parametrize("cls, command_path, names", [
    (SynthOptions, ["synth", "anny"], {"identities": "identities", "poses": "poses", "seed": "seed",
                                       "topology": "topology", "also_topology": "also"}),
    (DatasetOptions, ["build-dataset"], {"split": "split", "test_neutral": "test_neutral", "test_pose": "test_pose",
                                         "seed": "seed"}),
    (EvaluateOptions, ["evaluate"], {"iterations": "iterations", "solver": "solver",
                                     "jacobian_every": "jacobian_every"}),
])
def test_option_types_and_ranges_are_the_clis(cls, command_path, names):
    command = cli
    for part in command_path:
        command = command.commands[part]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for field_name, param_name in names.items():
        ours, theirs = fields[field_name].metadata["type"], _param(command, param_name).type
        assert _same_type(ours, theirs), (field_name, ours, theirs)


def test_run_refuses_a_badly_typed_option_before_any_step_runs(tmp_path):
    doc = {"pipeline": "bad", "stages": [
        {"name": "synth", "stage": "synth", "options": {"identities": 2, "poses": 2}},
        {"name": "scan", "stage": "sources-scan", "options": {"source": "anny"}},
        {"name": "build-dataset", "stage": "build-dataset", "options": {"test_pose": "eight"}},
    ]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = CliRunner().invoke(cli, ["run", str(path), "--workdir", str(tmp_path / "w"), "--scheduler", "synchronous"])
    assert res.exit_code == 2, res.output
    assert "step build-dataset (stage build-dataset): option test_pose: 'eight' is not a valid integer" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "w" / "synth").exists()
    doc["stages"][0]["options"]["identities"] = -3
    path.write_text(yaml.safe_dump(doc))
    res = CliRunner().invoke(cli, ["run", str(path), "--workdir", str(tmp_path / "w"), "--scheduler", "synchronous"])
    assert res.exit_code == 2 and "option identities: -3 is not in the range x>=1" in res.output, res.output


def test_list_stages_says_what_each_stage_does():
    res = CliRunner().invoke(cli, ["run", "--list-stages"])
    assert res.exit_code == 0, res.output
    assert "bodydata.pipeline" not in res.output  # no module paths
    lines = {ln.split()[0]: ln for ln in res.output.splitlines() if ln and not ln.startswith(" ")}
    assert "neutral body per subject" in lines["neutralize"]
    assert "options: identities, poses, seed, topology, also_topology" in res.output
