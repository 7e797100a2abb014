"""The neutral PNG shows the error against the true neutral when it is known, else the distance to the target, labelled."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.mesh import read_mesh, write_mesh
from bodydata.mesh.alignment import mean_euclidean_distance


@pytest.fixture()
def captured(monkeypatch):
    """Calls of render_before_after (its keyword arguments), the PNG still written by the real function."""
    from bodydata.viz import before_after

    calls = []
    real = before_after.render_before_after

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(before_after, "render_before_after", spy)
    return calls


def _run(tmp_path, tpl, bodies, truth):
    from bodydata.neutral.neutralize import NeutralConfig, Neutralizer, neutralize_subject_files

    poses = []
    for j in range(bodies["poses"].shape[1]):
        p = tmp_path / "in" / f"p{j}.ply"
        write_mesh(p, bodies["poses"][0, j], tpl.faces)
        poses.append((str(j), p))
    nz = Neutralizer(tpl, tpl.vertices, NeutralConfig(method="arap"))
    return neutralize_subject_files(nz, "s0", poses, tmp_path / "out", png=True, truth=truth)


def test_png_shows_the_error_to_the_true_neutral(tmp_path, anny_lite_template, anny_lite_bodies, captured):
    truth = anny_lite_bodies["neutral"][0]
    row = _run(tmp_path, anny_lite_template, anny_lite_bodies, truth)
    (kw,) = captured
    err = kw["error"]
    assert err.label == "error to true neutral" and err.panel == 1
    built = read_mesh(tmp_path / "out" / row["output"]).vertices
    med_mm = 1000.0 * mean_euclidean_distance(built, truth)
    assert err.values_mm.shape == (anny_lite_template.n_vertices,)
    assert np.isclose(err.values_mm.mean(), med_mm, atol=1e-6)
    assert f"error to true neutral {med_mm:.1f} mm mean" in kw["suptitle"]
    assert "residual to target" not in kw["suptitle"]
    assert (tmp_path / "out" / row["png"]).stat().st_size > 10_000


def test_png_falls_back_to_the_distance_to_the_target(tmp_path, anny_lite_template, anny_lite_bodies, captured):
    row = _run(tmp_path, anny_lite_template, anny_lite_bodies, None)
    (kw,) = captured
    err = kw["error"]
    assert err.label == "distance to target"
    built = read_mesh(tmp_path / "out" / row["output"]).vertices
    assert np.isclose(err.values_mm.mean(), 1000.0 * mean_euclidean_distance(built, anny_lite_template.vertices), atol=1e-6)
    assert "no true neutral known; residual to target" in kw["suptitle"]
    assert f"{float(row['residual_after_mm']):.1f} mm RMS" in kw["suptitle"]
