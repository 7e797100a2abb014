"""The automatic landmarks of a real FAUST registration land near the shipped SMPL landmark vertices."""
import numpy as np
import pytest


@pytest.mark.parametrize("mesh_id", ["000", "037"])
def test_faust_registration_auto_landmarks_near_smpl_landmarks(shared_data, mesh_id):
    from bodydata.mesh import read_mesh
    from bodydata.registration.body_landmarks import BodyLandmarks
    from bodydata.templates.landmarks import LANDMARK_NAMES, load_landmarks
    from bodydata.bodyfit.fit import BodyFitSettings

    path = shared_data / "faust" / "registrations" / f"tr_reg_{mesh_id}.ply"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    mesh = read_mesh(path)
    smpl = load_landmarks("smpl_6890")
    # FAUST is y-up in metres; the fit is told neither
    finder = BodyLandmarks(list(LANDMARK_NAMES), BodyFitSettings(), device="cpu")
    got = finder.find(mesh.vertices, mesh.faces)
    assert got.fit.status == "done" and got.fit.units == "m", got.reason
    # two body models' rules for one landmark differ by 1-2 cm (the crotch by 7 cm, shoulders on raised arms by up
    # to 15 cm); a wrong limb puts one 30-50 cm off. Measured: median 29 mm (000, arms down) and 40 mm (037, arms
    # raised, right knee up; its right ankle and heel 11-13 cm off: the fit's weak spot)
    err = {n: 1000 * np.linalg.norm(mesh.vertices[got.landmarks[n]] - mesh.vertices[smpl[n]])
           for n in got.landmarks if n in smpl and n != "crotch"}
    assert len(err) >= 20
    assert np.median(list(err.values())) < 45.0, err
    assert np.mean(list(err.values())) < 80.0 and max(err.values()) < 200.0, err
