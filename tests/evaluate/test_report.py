"""The report's numbers against a hand computation on a 3-mesh case; shape stability by hand."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from bodydata.evaluate.disentangle import shape_stability
from bodydata.evaluate.evaluation import Evaluation, RunEvaluation
from bodydata.evaluate.fit import FitSettings
from bodydata.evaluate.reconstruction import RunReconstruction, SplitMeshes
from bodydata.evaluate.report import summary_rows, write_report


def _three_mesh_case() -> tuple[Evaluation, dict]:
    n = 4
    target = np.zeros((3, n, 3))
    fitted = target.copy()
    fitted[:, :, 0] = np.array([1.0, 2.0, 6.0])[:, None] / 1000.0  # every vertex off by 1, 2, 6 mm
    rows = [{"id": f"m{i}", "identity": "a", "index": str(i)} for i in range(3)]
    meshes = {"pose": SplitMeshes("pose", rows, np.zeros((3, n, 9), np.float32), target)}
    fit_vertex = 1000.0 * np.linalg.norm(fitted - target, axis=-1)
    rec = RunReconstruction("pose", fit_vertex.mean(1), np.array([2.0, 4.0, 9.0]), fit_vertex, fitted,
                            np.zeros((3, 5), np.float32), None, np.full(3, 0.5), np.full(3, 7))
    info = {"run": "r1", "arch": "pca", "epochs": 12, "best_epoch": 10, "path": "r1"}
    ev = Evaluation(Path("DS"), "tiny", "test", FitSettings(), [RunEvaluation(info, {"pose": rec})])
    return ev, meshes


def test_summary_matches_hand_computation(tmp_path):
    ev, meshes = _three_mesh_case()
    rows = {r["codes"]: r for r in summary_rows(ev)}
    fit, enc = rows["fit"], rows["encoder"]
    assert fit["mean"] == pytest.approx(3.0) and fit["median"] == pytest.approx(2.0)
    assert fit["std"] == pytest.approx(np.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 3))
    assert fit["p95"] == pytest.approx(5.6) and fit["count"] == 3
    assert enc["mean"] == pytest.approx(5.0) and enc["max"] == pytest.approx(9.0)
    assert fit["alignment"] == "rigid" and fit["data"] == "tiny" and fit["split"] == "test" and fit["epochs"] == 12

    files = write_report(ev, meshes, tmp_path, figures=False)
    assert {p.name for p in files} >= {"summary.csv", "meshes.csv", "report.json", "report.md", "disentangle.csv"}
    with open(tmp_path / "summary.csv", newline="") as fh:
        table = {r["codes"]: r for r in csv.DictReader(fh)}
    assert float(table["fit"]["mean"]) == pytest.approx(3.0) and float(table["fit"]["p95"]) == pytest.approx(5.6)
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["fit"]["vertex_weight_per_m2"] == 1e6 and doc["summary"][1]["median"] == pytest.approx(2.0)
    md = (tmp_path / "report.md").read_text()
    assert "| r1 | pca | 12 | tiny | test | pose | fit | rigid | 3 | 3.0000 | 2.0000 |" in md
    with open(tmp_path / "meshes.csv", newline="") as fh:
        per_mesh = list(csv.DictReader(fh))
    assert [float(r["fit_mm"]) for r in per_mesh] == pytest.approx([1.0, 2.0, 6.0])


def test_shape_stability_by_hand():
    # identity a: codes (0,0), (2,0) -> mean (1,0), deviations 1, 1; identity b: (10,0) once -> mean (10,0)
    st = shape_stability(np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0]]), ["a", "a", "b"])
    assert st.within == pytest.approx(1.0)
    assert st.between == pytest.approx(4.5)  # identity means 1 and 10, their mean 5.5
    assert st.ratio == pytest.approx(1.0 / 4.5) and st.n_identities == 2 and st.n_meshes == 3
    assert np.isnan(shape_stability(np.zeros((2, 3)), ["a", "a"]).ratio)
