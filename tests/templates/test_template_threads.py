"""The anny template build gives the same bytes whatever the caller's thread counts (issue #13 item 7)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
threadpoolctl = pytest.importorskip("threadpoolctl")

from bodydata.templates import anny as anny_builder  # noqa: E402
from bodydata.templates.template import build_template  # noqa: E402


def _blas_threads() -> list[int]:
    return [p["num_threads"] for p in threadpoolctl.threadpool_info()]


def test_anny_forward_runs_single_threaded_and_restores_the_callers_counts(monkeypatch):
    import anny

    seen: list[tuple[int, list[int]]] = []
    forward = anny.Anny.forward

    def spy(self, *args, **kwargs):
        seen.append((torch.get_num_threads(), _blas_threads()))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(anny.Anny, "forward", spy)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with threadpoolctl.threadpool_limits(limits=2):
            blas_before = _blas_threads()
            anny_builder.load_anny_rest("notoes_collapse10pc")
            assert torch.get_num_threads() == 2 and _blas_threads() == blas_before
    finally:
        torch.set_num_threads(before)
    assert seen and all(t == 1 and all(b == 1 for b in blas) for t, blas in seen)


def test_anny_lite_build_is_byte_identical_under_one_and_two_threads():
    before = torch.get_num_threads()
    built = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            with threadpoolctl.threadpool_limits(limits=n):
                built[n] = build_template("anny-lite")
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before
    one, two = built[1], built[2]
    assert one.vertices.dtype == two.vertices.dtype == np.float64
    assert one.vertices.tobytes() == two.vertices.tobytes()
    assert one.faces.tobytes() == two.faces.tobytes()
    assert one.part_labels.tobytes() == two.part_labels.tobytes()
    assert one.equals(two)
