"""MED, summaries and CED curves against hand computations and naive loops."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.evaluate.metrics import ced_curve, med_mm, summarize, vertex_errors_mm


def test_med_is_mean_vertex_distance_in_mm():
    a = np.zeros((3, 3))
    b = np.array([[0.003, 0.0, 0.0], [0.0, 0.004, 0.0], [0.0, 0.0, 0.002]])  # 3, 4, 2 mm
    assert med_mm(a, b) == pytest.approx(3.0)
    assert np.allclose(vertex_errors_mm(a, b), [3.0, 4.0, 2.0])


def test_med_batched_matches_loop_and_rigid_removes_a_motion():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 50, 3)), rng.normal(size=(4, 50, 3))
    naive = [np.mean([1000 * np.linalg.norm(a[k, i] - b[k, i]) for i in range(50)]) for k in range(4)]
    assert np.allclose(med_mm(a, b), naive)
    c, s = np.cos(0.7), np.sin(0.7)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    moved = a[0] @ rot.T + [0.1, 0.2, -0.3]
    assert med_mm(a[0], moved) > 10
    assert med_mm(a[0], moved, rigid=True) < 1e-9


def test_summary_matches_hand_numbers():
    s = summarize([1.0, 2.0, 6.0, float("nan")])  # the NaN is a failed mesh: left out
    assert s.count == 3 and s.mean == pytest.approx(3.0) and s.median == pytest.approx(2.0)
    assert s.std == pytest.approx(np.sqrt(14.0 / 3.0))
    assert s.p95 == pytest.approx(2.0 + 0.9 * 4.0)  # linear interpolation between the 2nd and 3rd value
    assert s.max == 6.0
    assert summarize([]).count == 0


def test_ced_matches_naive_count():
    rng = np.random.default_rng(1)
    e = rng.gamma(2.0, 3.0, size=(5, 40))
    t = np.linspace(0, 30, 17)
    naive = [sum(1 for x in e.ravel() if x <= ti) / e.size for ti in t]
    assert np.allclose(ced_curve(e, t), naive)
    assert ced_curve(e, [1e9])[0] == 1.0
