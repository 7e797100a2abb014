"""generate / interpolate / transfer: codes combined as documented, meshes and sheets written, bad input one line."""
from __future__ import annotations

import numpy as np
import torch
from click.testing import CliRunner

from bodydata.cli.main import cli


def _codes_file(path, z):
    np.savez(path, z=z)
    return path


def test_interpolate_and_transfer_combine_codes(dhnn_run, tmp_path):
    from bodydata.evaluate.apps import interpolate, transfer

    rng = np.random.default_rng(0)
    za, zb = rng.standard_normal((2, 122)).astype(np.float32)
    a, b = _codes_file(tmp_path / "a.npz", za), _codes_file(tmp_path / "b.npz", zb)
    res = interpolate(dhnn_run, a, b, tmp_path / "path", steps=5, extrapolate=0.5, device="cpu")
    ts = np.linspace(-0.5, 1.5, 5)
    assert np.allclose(res.z, [(1 - t) * za + t * zb for t in ts], atol=1e-6)
    assert len(res.meshes) == 5 and res.sheet.stat().st_size > 1000
    grid = interpolate(dhnn_run, a, b, tmp_path / "grid", steps=2, grid=True, device="cpu")
    # row i takes the shape code of path(t_i), column j the pose code of path(t_j)
    assert np.allclose(grid.z[1][:50], za[:50]) and np.allclose(grid.z[1][50:], zb[50:])  # row 0, column 1
    assert np.allclose(grid.z[2][:50], zb[:50]) and np.allclose(grid.z[2][50:], za[50:])  # row 1, column 0
    tr = transfer(dhnn_run, a, b, tmp_path / "transfer", device="cpu")
    assert np.allclose(tr.z[2][:50], za[:50]) and np.allclose(tr.z[2][50:], zb[50:])
    from bodydata.mesh import read_mesh
    from bodydata.model import load

    m = load(dhnn_run, device="cpu")
    with torch.no_grad():
        want = m.vertices(torch.as_tensor(za[None, :50]), torch.as_tensor(zb[None, 50:]))[0].numpy()
    assert np.allclose(read_mesh(tr.meshes[2]).vertices, want, atol=1e-6)  # batch of 3 vs 1: float32 rounding


def test_generate_command_and_bad_input(dhnn_run, pca_run, tmp_path):
    res = CliRunner().invoke(cli, ["generate", "--run", str(dhnn_run), "--out", str(tmp_path / "g"), "--n", "3",
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "g").glob("sample_*.ply"))) == 3 and (tmp_path / "g" / "sheet.png").is_file()
    bad = _codes_file(tmp_path / "short.npz", np.zeros(7, np.float32))
    res = CliRunner().invoke(cli, ["transfer", "--run", str(dhnn_run), "--shape", str(bad), "--pose", str(bad),
                                   "--out", str(tmp_path / "t")])
    assert res.exit_code == 2 and "codes of length" in res.output and "Traceback" not in res.output
    z = _codes_file(tmp_path / "z.npz", np.zeros(122, np.float32))
    res = CliRunner().invoke(cli, ["transfer", "--run", str(pca_run), "--shape", str(z), "--pose", str(z),
                                   "--out", str(tmp_path / "t")])
    assert res.exit_code == 2 and "disentangled" in res.output
    assert "Example" in CliRunner().invoke(cli, ["interpolate", "--help"]).output
