"""Fitting anny to a body of unknown frame: a known phenotype and pose recovered from its own remeshed mesh under a
random rotation and millimetre scale; a body lying down or upside down; a target that is not a body fails."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

LITE = "notoes_collapse10pc"


@pytest.fixture(scope="module")
def fitter():
    from bodydata.bodyfit.fit import BodyFitSettings, BodyFitter

    # fewer start poses and kept hypotheses than the defaults (4, 8): on these bodies the same fits, faster
    return BodyFitter(BodyFitSettings(topology=LITE, n_points=2000, keep=3, start_poses=("standing_relaxed", "t_pose")))


@pytest.fixture(scope="module")
def bodies():
    from bodydata.generator.bodies import anny_bodies

    return anny_bodies(LITE, 2, 2, seed=21)


def _remeshed(vertices, faces, seed):
    from bodydata.registration.remesh import remesh_body

    r = remesh_body(vertices, faces, {}, seed=seed)
    return r.vertices, r.faces


@pytest.mark.parametrize("k,mesh", [(0, True), (3, False)], ids=["mesh", "point-cloud"])
def test_recovers_a_remeshed_body_in_millimetres_under_a_random_rotation(fitter, bodies, k, mesh):
    v = bodies.vertices[LITE][k]
    rot = Rotation.random(random_state=k).as_matrix()
    shift = np.array([250.0, -80.0, 1200.0])
    points, faces = _remeshed(v, bodies.faces[LITE], k)
    target = 1000.0 * points @ rot.T + shift
    fit = fitter.fit(target, faces if mesh else None)  # a point cloud: normals from the points
    assert fit.status == "done" and fit.units == "mm"
    truth = 1000.0 * v @ rot.T + shift
    med = np.linalg.norm(fit.vertices - truth, axis=1).mean()
    assert med < (15.0 if mesh else 20.0), (bodies.names[k], med, fit.hypothesis)
    # the scale is the unit's (metres -> millimetres); the global rotation alone is not checked: the pelvis
    # DOFs trade with it (the body's placement is, through the MED)
    assert abs(fit.scale / 1000.0 - 1.0) < 0.06


@pytest.mark.parametrize("turn", [[np.pi / 2, 0.0, 0.0], [0.0, np.pi, 0.0]], ids=["lying", "upside-down"])
def test_orientation_hypotheses_pick_the_right_one(fitter, bodies, turn):
    v = bodies.vertices[LITE][1]
    rot = Rotation.from_rotvec(turn).as_matrix()
    fit = fitter.fit(v @ rot.T, bodies.faces[LITE])
    assert fit.status == "done" and fit.units == "m"
    assert np.linalg.norm(fit.vertices - v @ rot.T, axis=1).mean() < 0.02  # a wrong orientation: > 0.1
    up = fit.rotation @ [0.0, 0.0, 1.0]
    assert up @ (rot @ [0.0, 0.0, 1.0]) > 0.95


def test_not_a_body_is_a_failed_fit(fitter):
    rng = np.random.default_rng(0)
    sphere = rng.normal(size=(3000, 3))
    sphere = 0.5 * sphere / np.linalg.norm(sphere, axis=1, keepdims=True)
    fit = fitter.fit(sphere)
    assert fit.status == "failed" and "body fit failed" in fit.reason


def test_unusable_input_is_one_line(fitter):
    from bodydata.bodyfit.fit import BodyFitError

    with pytest.raises(BodyFitError, match="at least 100 points"):
        fitter.fit(np.zeros((10, 3)))
    bad = np.ones((500, 3))
    bad[3, 1] = np.nan
    with pytest.raises(BodyFitError, match="NaN"):
        fitter.fit(bad)


@pytest.mark.parametrize("mid", ["018", "027"])
def test_faust_poses_that_misled_the_search_are_fitted_right(shared_data, mid):
    """FAUST tr_reg_018 (pose 8: an arm swung forward, a step): rigid scores of key-posed bodies rank the right facing
    5th-12th, and an earlier search (the best distinct key poses of the rigid stage) fitted it about 90 degrees off
    (median landmark 17 cm away); the pool of short posed fits over 8 azimuths faces it right. tr_reg_027 (pose 7:
    hands on the head, the right knee lifted and turned out): with the library's poses alone the fit raised the arms
    straight and lifted the knee forward (mean landmark 98 mm away at 12k vertices); the start poses of
    :mod:`bodydata.bodyfit.scan_poses` and the wider hip rotation fit it. Checked against the shipped SMPL landmarks."""
    from bodydata.bodyfit.fit import BodyFitSettings, BodyFitter
    from bodydata.mesh import read_mesh
    from bodydata.templates.landmarks import load_landmarks
    path = shared_data / "faust" / "registrations" / f"tr_reg_{mid}.ply"
    if not path.is_file():
        pytest.skip(f"real data {path} is absent")
    mesh = read_mesh(path)
    fit = BodyFitter(BodyFitSettings(topology=LITE)).fit(mesh.vertices, mesh.faces)
    smpl, anny = load_landmarks("smpl_6890"), load_landmarks(f"anny_{LITE}")
    names = [n for n in anny if n in smpl and n != "crotch"]
    err = np.array([np.linalg.norm(fit.vertices[anny[n]] - mesh.vertices[smpl[n]]) for n in names])
    # a right fit puts the median landmark 3-4 cm away and the mean under 5 cm (the landmark sets of two body models
    # differ by 2-3 cm); a limb in the wrong place lifts the mean over 6 cm
    assert fit.status == "done" and np.median(err) < 0.05 and err.mean() < 0.055, (
        np.median(err), err.mean(), fit.hypothesis)


def test_bad_search_settings_are_one_line():
    from bodydata.bodyfit.fit import BodyFitError, BodyFitSettings, BodyFitter

    for bad in (dict(azimuths=5), dict(azimuths=0), dict(keep=0), dict(orientations=0), dict(pool_per_orientation=0),
                dict(pool_points=(0, 100)), dict(pool_distinct=-1), dict(min_separation=180.0),
                dict(min_separation=float("nan"))):
        with pytest.raises(BodyFitError, match="azimuths|at least 1|>= 0|min_separation"):
            BodyFitter(BodyFitSettings(topology=LITE, **bad))
