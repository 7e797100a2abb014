"""A mesh with no landmarks converts through the body-model start: anny fitted to it gives its landmarks."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bodydata.registration.register import RegistrationConfig

FAST = dict(coarse_iters=25, fine_iters=12, coarse_dists=(0.10, 0.05, 0.03), fine_dists=(0.03, 0.015))
LITE = "notoes_collapse10pc"


@pytest.fixture(scope="module")
def setup(anny_lite_template):
    from bodydata.bodyfit.fit import BodyFitSettings
    from bodydata.features.acap import AcapExtractor
    from bodydata.generator.bodies import anny_bodies
    from bodydata.registration.body_landmarks import BodyLandmarks
    from bodydata.registration.prior import build_prior
    from bodydata.registration.register import Registrar

    t = anny_lite_template
    train = anny_bodies(LITE, 6, 4, seed=11)
    test = anny_bodies(LITE, 1, 1, seed=11, first_identity=500, extra_topologies=("anny",))
    pr = build_prior(AcapExtractor(t.vertices, t.faces)(train.vertices[LITE]).f, t.vertices, t.faces, t.part_labels,
                     60, "anny-lite")
    fast = BodyFitSettings(n_points=2000, keep=3, start_poses=("standing_relaxed", "t_pose"))  # as the body fit tests
    finder = BodyLandmarks(sorted(t.landmarks), fast, device="cpu", template_topology=LITE)
    return t, Registrar(t, pr, RegistrationConfig(**FAST)), test, finder


def test_found_landmarks_land_near_the_true_landmark_vertices(setup):
    t, _, test, finder = setup
    from bodydata.templates.landmarks import load_landmarks

    body = test.vertices[LITE][0]
    rot = Rotation.from_rotvec([0.4, -2.0, 0.7]).as_matrix()
    target = 1000.0 * body @ rot.T
    got = finder.find(target)
    assert got.fit.status == "done" and got.fit.units == "mm"
    truth = load_landmarks(f"anny_{LITE}")
    err = [np.linalg.norm(target[got.landmarks[n]] - target[truth[n]]) for n in got.landmarks]
    assert len(err) >= 20 and np.median(err) < 20.0 and np.mean(err) < 30.0, sorted(err)


def test_a_normalised_body_is_fitted_with_a_free_scale(setup, monkeypatch):
    """FAUST_r-style input: a body rescaled to 0.62 of its size spans about a metre, which reads as a short body in
    metres; told its units are normalised (the source row says so), the fit leaves the scale free."""
    from bodydata.manifest.source_rows import UNITS_NORMALIZED
    from bodydata.registration.convert import ConvertTarget, convert_meshes
    from bodydata.templates.landmarks import load_landmarks

    from bodydata.bodyfit.orient import detect_units
    from bodydata.registration.body_landmarks import LandmarkFind

    t, reg, test, finder = setup
    body = test.vertices[LITE][0]
    target = 0.62 * body @ Rotation.from_rotvec([0.0, 0.3, 0.0]).as_matrix().T
    assert detect_units(target).units == "m"  # the premise: untold, its size reads as metres
    got = finder.find(target, normalised=True)
    assert got.fit.status == "done" and got.fit.units == "normalized"
    truth = load_landmarks(f"anny_{LITE}")
    err = [np.linalg.norm(target[got.landmarks[n]] - target[truth[n]]) / 0.62 for n in got.landmarks]
    assert np.median(err) < 0.02, sorted(err)
    np.testing.assert_allclose(got.fit.scale, 0.62, rtol=0.06)
    # the convert step passes the row's units on to the body fit
    seen = []
    stub = LandmarkFind(None, got.fit, "stub")  # no landmarks: both rows fail at once, no registration runs
    monkeypatch.setattr(finder, "find", lambda v, f=None, normalised=False: seen.append(normalised) or stub)
    rows = convert_meshes(reg, [ConvertTarget("n", target, test.faces[LITE], None, "n.ply", UNITS_NORMALIZED),
                                ConvertTarget("N", target, test.faces[LITE], None, "N.ply", "Normalised"),
                                ConvertTarget("m", target, test.faces[LITE], None, "m.ply", "m")], finder)
    assert seen == [True, True, False] and not any(r.done for r in rows)


def test_mesh_without_landmarks_converts_through_the_body_fit(setup):
    from bodydata.registration.convert import ConvertTarget, convert_meshes
    from bodydata.registration.metrics import med

    t, reg, test, finder = setup
    src = test.vertices["anny"][0]
    q = Rotation.from_rotvec([1.3, 0.2, -0.4]).as_matrix()
    moved = src @ q.T + [0.3, -0.1, 0.2]
    target = ConvertTarget("x/nolm", moved, test.faces["anny"], None, "nolm.ply")
    conv = convert_meshes(reg, [target], finder)[0]
    assert conv.done, conv.row.reason
    assert conv.row.landmarks_from == "body fit" and np.isfinite(conv.row.body_fit_mm)
    assert finder.guided  # the template is anny's own mesh: the fitted body guided the registration
    assert conv.row.p2m_mean_mm < 10 and conv.row.m2p_mean_mm < 10
    truth = test.vertices[LITE][0] @ q.T + [0.3, -0.1, 0.2]
    assert med(conv.vertices, truth) < 0.03
    # without a finder the same mesh is a failed row, as before the body model
    alone = convert_meshes(reg, [ConvertTarget("x/nolm", moved, test.faces["anny"], None)])[0]
    assert not alone.done and alone.row.reason.startswith("no landmarks")


def test_unusable_or_unfittable_targets_are_failed_rows(setup):
    from bodydata.registration.convert import ConvertTarget, convert_meshes

    t, reg, test, finder = setup
    rng = np.random.default_rng(0)
    ball = rng.normal(size=(2000, 3))
    ball = 0.4 * ball / np.linalg.norm(ball, axis=1, keepdims=True)
    from scipy.spatial import ConvexHull

    faces = ConvexHull(ball).simplices.astype(np.int64)
    nan = ball.copy()
    nan[5] = np.nan
    rows = convert_meshes(reg, [ConvertTarget("ball", ball, faces, None), ConvertTarget("nan", nan, faces, None)],
                          finder)
    assert [c.done for c in rows] == [False, False]
    assert "body-model start failed" in rows[0].row.reason and "body fit failed" in rows[0].row.reason
    assert "NaN" in rows[1].row.reason
