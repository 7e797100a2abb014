"""Every command's --help has an example and the shared exit statuses; bodydata --help lists the statuses."""
from click.testing import CliRunner

from bodydata.cli._help import commands
from bodydata.cli.main import cli


def test_every_command_has_an_example_and_the_exit_statuses():
    missing = []
    for path, command in commands(cli):
        r = CliRunner().invoke(cli, [*path.split(), "--help"])
        assert r.exit_code == 0, (path, r.output)
        if "Example" not in r.output or "Exit status" not in r.output:
            missing.append(path)
    assert not missing, f"commands without an example or exit statuses in --help: {missing}"
    top = CliRunner().invoke(cli, ["--help"]).output
    assert "2 cannot start" in top


def test_defaults_are_stated():
    r = CliRunner().invoke(cli, ["build-dataset", "--help"])
    assert "[default: paper]" in " ".join(r.output.split())
