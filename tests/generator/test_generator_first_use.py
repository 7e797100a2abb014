"""The generator says so before anny fills an empty model cache (issue #14 item 9)."""


def test_first_use_notice_names_the_cache(monkeypatch, tmp_path, capsys):
    import anny.paths

    from bodydata.generator.synth import _first_use_notice

    monkeypatch.setattr(anny.paths, "get_anny_cache_path", lambda: tmp_path / "empty_cache")
    _first_use_notice()
    err = capsys.readouterr().err
    assert "first use" in err and str(tmp_path / "empty_cache") in err and "GB" in err
    (tmp_path / "empty_cache").mkdir()
    (tmp_path / "empty_cache" / "x").write_text("1")
    _first_use_notice()
    assert capsys.readouterr().err == ""
