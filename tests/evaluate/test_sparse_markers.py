"""Table 5 (sparse markers): the report's rows by hand, and the marker fit on meshes decoded from known codes."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bodydata.evaluate.evaluation import Evaluation, RunEvaluation
from bodydata.evaluate.fit import FitSettings, MeshFitter
from bodydata.evaluate.metrics import med_mm
from bodydata.evaluate.reconstruction import SplitMeshes
from bodydata.evaluate.report import sparse_rows, write_report
from bodydata.evaluate.sparse_markers import SparseMarkerFit, sparse_marker_fit


def test_sparse_rows_match_a_hand_computation(tmp_path):
    fit = SparseMarkerFit("pose", "landmarks", 27, np.array([2.0, 4.0, 12.0]), np.array([1.0, 2.0, 6.0]),
                          np.array([50, 60, 70]))
    info = {"run": "r1", "arch": "dhnn", "epochs": 5, "path": "r1"}
    ev = Evaluation(Path("DS"), "tiny", "test", FitSettings(), [RunEvaluation(info, sparse={"pose": fit})],
                    markers="landmarks")
    (row,) = sparse_rows(ev)
    assert row["k"] == 27 and row["count"] == 3 and row["set"] == "pose" and row["alignment"] == "rigid"
    assert row["mean"] == pytest.approx(6.0) and row["median"] == pytest.approx(4.0) and row["max"] == 12.0
    assert row["std"] == pytest.approx(np.sqrt((16 + 4 + 36) / 3)) and row["marker_mm"] == pytest.approx(3.0)
    meshes = {"pose": SplitMeshes("pose", [{"id": f"m{i}"} for i in range(3)], np.zeros((3, 4, 9), np.float32),
                                  np.zeros((3, 4, 3)))}
    write_report(ev, meshes, tmp_path, figures=False)
    with open(tmp_path / "sparse.csv", newline="") as fh:
        (table,) = list(csv.DictReader(fh))
    assert float(table["mean"]) == pytest.approx(6.0) and table["k"] == "27" and float(table["marker_mm"]) == 3.0
    assert json.loads((tmp_path / "report.json").read_text())["sparse"]["rows"][0]["median"] == pytest.approx(4.0)
    assert "| r1 | dhnn | 5 | tiny | test | pose | landmarks | 27 | rigid | 3 | 6.0000 | 4.0000 |" in (
        tmp_path / "report.md").read_text()


def test_marker_fit_of_decoded_meshes_gets_close_to_the_whole_mesh(dhnn_model, anny_lite_template):
    fitter = MeshFitter(dhnn_model, FitSettings())
    z = 0.7 * torch.randn(3, fitter.n_latent, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        truth = fitter.decode_vertices(z).numpy()
        mean_body = fitter.decode_vertices(torch.zeros(1, fitter.n_latent)).numpy()
    meshes = SplitMeshes("pose", [{"id": f"m{i}"} for i in range(3)], np.zeros((3, len(truth[0]), 9), np.float32),
                         truth)
    markers = np.array(sorted(set(anny_lite_template.landmarks.values())))
    res = sparse_marker_fit(dhnn_model, meshes, markers, "landmarks", FitSettings(iterations=150), batch_size=2)
    start = med_mm(np.repeat(mean_body, 3, 0), truth, rigid=True)  # the zero-code body, best aligned
    assert res.k == 27 and res.med_mm.shape == (3,) and np.all(res.iterations > 0)
    assert np.all(res.med_mm < 0.5 * start)  # 27 markers pin most of the body
    assert np.all(res.marker_mm < res.med_mm)  # the markers it saw are matched better than the rest
