"""The shape-pair correspondence protocol on synthetic shapes with a known answer."""
from __future__ import annotations

import numpy as np

from bodydata.mesh.geodesic import GeodesicSolver
from bodydata.registration.correspondence import run_benchmark


def test_geodesics_on_a_grid():
    nx = 5
    x, y = np.meshgrid(np.arange(nx, dtype=float), np.arange(nx, dtype=float))
    v = np.stack([x.ravel(), y.ravel(), np.zeros(nx * nx)], 1)
    f = []
    for i in range(nx - 1):
        for j in range(nx - 1):
            k = i * nx + j
            f += [[k, k + 1, k + nx + 1], [k, k + nx + 1, k + nx]]
    g = GeodesicSolver(v, np.array(f), "dijkstra").from_sources(np.array([0]))
    assert np.isclose(g[0, nx - 1], nx - 1)                        # along an edge row
    assert np.isclose(g[0, nx * nx - 1], (nx - 1) * np.sqrt(2))    # along the diagonals


def _write_case(tmp_path, tpl, bodies, shift_b=0.0):
    from bodydata.mesh import write_mesh
    from bodydata.registration.convert import ConvertRow, write_results

    rng = np.random.default_rng(0)
    (tmp_path / "off").mkdir()
    (tmp_path / "corres").mkdir()
    (tmp_path / "conv" / "meshes").mkdir(parents=True)
    rows = []
    sample = rng.choice(tpl.n_vertices, 300, replace=False)
    for s, body in enumerate(bodies):
        stem = f"tr_reg_{s:03d}"
        perm = rng.permutation(tpl.n_vertices)        # shape vertex a = template vertex perm[a]
        inv = np.argsort(perm)
        write_mesh(tmp_path / "off" / f"{stem}.off", body[perm], inv[tpl.faces])
        (tmp_path / "corres" / f"{stem}.vts").write_text("\n".join(str(inv[k] + 1) for k in sample) + "\n")
        conv = body + (shift_b if s == 1 else 0.0)
        write_mesh(tmp_path / "conv" / "meshes" / f"{stem}.ply", conv, tpl.faces)
        rows.append(ConvertRow(id=stem, source_path=str(tmp_path / "off" / f"{stem}.off"),
                               out_path=str(tmp_path / "conv" / "meshes" / f"{stem}.ply"), status="ok"))
    write_results(tmp_path / "conv" / "conversion.csv", rows)


def test_protocol_zero_for_exact_conversions(anny_lite_template, tmp_path):
    t = anny_lite_template
    rng = np.random.default_rng(1)
    bodies = [t.vertices, t.vertices * 1.05 + 0.002 * rng.standard_normal(t.vertices.shape)]
    _write_case(tmp_path, t, bodies)
    s = run_benchmark(tmp_path, tmp_path / "conv", out=tmp_path / "pairs.csv")
    assert s["pairs"] == 2 and s["mean_error_x100"] == 0.0
    assert (tmp_path / "pairs.csv").read_text().count("\n") == 3


def test_protocol_detects_wrong_conversion(anny_lite_template, tmp_path):
    t = anny_lite_template
    # B's converted mesh sits 5 cm off B: predictions land on wrong vertices, the error is > 0
    _write_case(tmp_path, t, [t.vertices, t.vertices.copy()], shift_b=np.array([0.0, 0.0, 0.05]))
    s = run_benchmark(tmp_path, tmp_path / "conv", ids="tr_reg_000-001", pairs="consecutive", geodesics="dijkstra",
                      out=tmp_path / "pairs.csv")
    assert s["pairs"] == 1 and s["mean_error_x100"] > 1.0
    assert s["geodesics"] == "dijkstra" and "Dijkstra" in s["geodesics_note"]
    assert (tmp_path / "pairs.csv").read_text().splitlines()[1].endswith(",dijkstra")
    # the exact ruler reads shorter than the edge graph's, never longer
    e = run_benchmark(tmp_path, tmp_path / "conv", ids="tr_reg_000-001", pairs="consecutive", geodesics="exact")
    assert e["geodesics"] == "flip" and 0 < e["mean_error_x100"] < s["mean_error_x100"]


def test_cli_states_the_ruler(anny_lite_template, tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from bodydata.cli.main import cli
    from bodydata.mesh import geodesic

    t = anny_lite_template
    _write_case(tmp_path, t, [t.vertices, t.vertices.copy()], shift_b=np.array([0.0, 0.0, 0.05]))
    args = ["benchmark", "correspondence", "--root", str(tmp_path), "--converted", str(tmp_path / "conv"),
            "--pairs", "consecutive"]
    res = CliRunner().invoke(cli, [*args, "--geodesics", "dijkstra"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["geodesics"] == "dijkstra"
    monkeypatch.setattr(geodesic, "_module", lambda method: None)      # no optional package installed
    res = CliRunner().invoke(cli, [*args, "--geodesics", "mmp"])
    assert res.exit_code == 2 and "needs the optional gdist" in res.output
    res = CliRunner().invoke(cli, args)                                 # the default: exact, in pure Python
    out = json.loads(res.output)
    assert res.exit_code == 0 and out["geodesics"] == "flip" and "pure Python" in out["geodesics_note"]
