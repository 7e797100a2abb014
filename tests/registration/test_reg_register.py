"""Registration (paper Eq. 14) on anny bodies with ground truth, failure rows, and one whole mesh conversion."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.registration.register import RegistrationConfig, similarity_from_points

FAST = dict(device="cpu", coarse_dists=(0.10, 0.05, 0.03), coarse_iters=25, fine_dists=(0.03, 0.02, 0.01, 0.01))


def test_similarity_from_points_exact():
    rng = np.random.default_rng(0)
    src = rng.standard_normal((10, 3))
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.linalg.det(q))
    dst = 1.7 * src @ q.T + [0.1, -2.0, 0.5]
    s, r, t = similarity_from_points(src, dst)
    assert np.isclose(s, 1.7) and np.allclose(r, q) and np.allclose(t, [0.1, -2.0, 0.5])


@pytest.fixture(scope="module")
def lite_setup(anny_lite_template):
    from bodydata.features.acap import AcapExtractor
    from bodydata.registration.prior import build_prior
    from bodydata.registration.register import Registrar
    from bodydata.generator.bodies import anny_bodies

    t = anny_lite_template
    topo = "notoes_collapse10pc"
    train = anny_bodies(topo, 6, 4, seed=11)
    test = anny_bodies(topo, 1, 1, seed=11, first_identity=500, extra_topologies=("anny",))
    pr = build_prior(AcapExtractor(t.vertices, t.faces)(train.vertices[topo]).f, t.vertices, t.faces, t.part_labels,
                     60, "anny-lite")
    return t, Registrar(t, pr, RegistrationConfig(**FAST)), test


def test_convert_anny_default_topology_to_lite(lite_setup):
    """A body in anny's 13,718-vertex topology, converted to the 1,229-vertex template: close to the truth."""
    from bodydata.registration.metrics import med
    from bodydata.generator.bodies import transfer_landmarks

    t, reg, test = lite_setup
    truth = test.vertices["notoes_collapse10pc"][0]
    src = test.vertices["anny"][0]
    lm = transfer_landmarks(t.landmarks, truth, src)
    res = reg.register(src, test.faces["anny"], lm)
    assert res.status == "done", res.reason
    names = list(lm)
    s, r, tr = similarity_from_points(t.vertices[[t.landmarks[k] for k in names]], src[[lm[k] for k in names]])
    rigid_med = med(s * t.vertices @ r.T + tr, truth)
    got = med(res.vertices, truth)
    # coarse template and a 24-body prior: ~1 cm here (the 12k template reaches ~3 mm, see benchmarks)
    assert got < 0.025 and got < 0.25 * rigid_med, (got, rigid_med)
    assert res.landmark_error < 0.01 and res.overlap > 0.7 and res.iterations > 0


def test_failures_are_rows(lite_setup):
    t, reg, test = lite_setup
    src, faces = test.vertices["anny"][0], test.faces["anny"]
    res = reg.register(src, faces, {"nose_tip": 0, "chin": 1})
    assert res.status == "failed" and res.reason.startswith("no landmarks")
    # landmarks on a mesh far smaller than a body: the template never overlaps the surface
    tiny = src * 0.01 + 5.0
    lm = {k: int(i) for k, i in zip(t.landmarks, np.random.default_rng(0).integers(0, len(src), len(t.landmarks)))}
    res = reg.register(tiny, faces, lm)
    assert res.status == "failed" and ("overlap" in res.reason or "diverged" in res.reason)


def test_convert_mesh(lite_setup):
    """One whole conversion: metrics both ways, the converted mesh and its torso-aligned copy; a mesh without
    landmarks is a failed conversion with the reason."""
    from bodydata.registration.convert import TORSO_PARTS, ConvertTarget, convert_mesh
    from bodydata.generator.bodies import transfer_landmarks

    t, reg, test = lite_setup
    src = test.vertices["anny"][0]
    lm = transfer_landmarks(t.landmarks, test.vertices["notoes_collapse10pc"][0], src)
    # the input turned and shifted: the aligned copy comes back to the template's frame, the converted one does not
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((3, 3)))
    q *= np.sign(np.linalg.det(q))
    moved = src @ q.T + [0.3, -0.1, 0.2]
    conv = convert_mesh(reg, ConvertTarget("x/good", moved, test.faces["anny"], lm, "good.ply"))
    row = conv.row
    assert conv.done and row.status == "done" and row.source_path == "good.ply" and row.iterations > 0
    assert row.p2m_mean_mm < 10 and row.m2p_mean_mm < 10 and row.n_landmarks == 26  # the crotch is ignored
    # the aligned copy is the converted mesh moved rigidly (equal edge lengths) ...
    e = t.faces[:, :2]
    assert np.allclose(np.linalg.norm(conv.aligned[e[:, 0]] - conv.aligned[e[:, 1]], axis=1),
                       np.linalg.norm(conv.vertices[e[:, 0]] - conv.vertices[e[:, 1]], axis=1), atol=1e-9)
    # ... whose torso fits the template's torso best: a naive Kabsch of the torso leaves it where it is
    torso = np.isin(t.part_labels, [list(t.part_names).index(n) for n in TORSO_PARTS])
    a, b = conv.aligned[torso], t.vertices[torso]
    u, _, vt = np.linalg.svd((b - b.mean(0)).T @ (a - a.mean(0)))
    rot = u @ np.diag([1, 1, np.sign(np.linalg.det(u @ vt))]) @ vt
    assert np.allclose(rot, np.eye(3), atol=1e-8) and np.allclose(a.mean(0), b.mean(0), atol=1e-9)
    none = convert_mesh(reg, ConvertTarget("x/nolm", moved, test.faces["anny"], None))
    assert not none.done and none.row.reason.startswith("no landmarks") and none.vertices is None


def test_similarity_from_points_rigid():
    """scale=False: the best rotation and translation alone (s = 1), also for a scaled copy."""
    rng = np.random.default_rng(1)
    src = rng.standard_normal((12, 3))
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.linalg.det(q))
    s, r, t = similarity_from_points(src, src @ q.T + [1.0, 2.0, 3.0], scale=False)
    assert s == 1.0 and np.allclose(r, q) and np.allclose(t, [1.0, 2.0, 3.0])
    # a scaled target: the rigid fit keeps the rotation and matches the centroids
    dst = 2.0 * src @ q.T + [1.0, 2.0, 3.0]
    s, r, t = similarity_from_points(src, dst, scale=False)
    assert s == 1.0 and np.allclose(r, q) and np.allclose(src.mean(0) @ r.T + t, dst.mean(0))
