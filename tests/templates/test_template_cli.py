"""``bodydata template build|show`` through click's CliRunner on anny-lite (and option errors)."""
from click.testing import CliRunner

from bodydata.cli.main import cli


def test_build_and_show_anny_lite(tmp_path):
    runner = CliRunner()
    out = tmp_path / "lite"
    res = runner.invoke(cli, ["template", "build", "anny-lite", "--out", str(out), "--no-png"])
    assert res.exit_code == 0, res.output
    assert "1229 vertices, 2454 faces, 27 landmarks" in res.output
    assert (out / "template.json").is_file() and not (out / "parts.png").exists()
    res = runner.invoke(cli, ["template", "show", str(out)])
    assert res.exit_code == 0, res.output
    text = res.output
    assert "1229 vertices, 2454 faces, units m, up z, front -y, subject's left x" in text
    assert " 6 hand_L " in text and "hand_L " in text.split(" 5 forearm_L")[1].splitlines()[0]
    assert "[FAIL]" not in text and text.count("[ok]") >= 8
    assert "part graph: 15 adjacencies" in text
    png = out / "parts.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000


def test_show_fails_on_a_broken_folder(tmp_path, anny_lite_template):
    import dataclasses

    bad = dataclasses.replace(anny_lite_template, part_labels=anny_lite_template.part_labels.copy())
    bad.part_labels[bad.part_labels == 9] = 8  # hand_R merged into forearm_R: hand_R empty
    bad.save(tmp_path / "bad")
    res = CliRunner().invoke(cli, ["template", "show", str(tmp_path / "bad"), "--no-png"])
    assert res.exit_code == 1
    assert "[FAIL] every part has vertices: empty: hand_R" in res.output


def test_option_errors(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["template", "build", "scape", "--out", str(tmp_path / "s")])
    assert res.exit_code != 0 and "needs source files: mesh, faces, labels not given" in res.output
    f = tmp_path / "x.obj"
    f.write_text("v 0 0 0\n")
    res = runner.invoke(cli, ["template", "build", "anny-lite", "--mesh", str(f), "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "only apply to the scape template" in res.output
    res = runner.invoke(cli, ["template", "show", str(tmp_path / "missing")])
    assert res.exit_code == 1 and "neither a template folder nor a built-in template name" in res.output
