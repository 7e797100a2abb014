"""Re-articulation of a neutral (method body): a body anny explains, off the target pose, comes back at the target's angles."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("anny")


def test_rearticulate_takes_a_known_body_to_the_target_pose():
    from scipy.spatial.transform import Rotation

    from bodydata.mesh.alignment import align
    from bodydata.neutral.neutralize import NeutralConfig, Neutralizer, load_target
    from bodydata.templates.template import load_template

    tpl = load_template("anny-lite")
    nz = Neutralizer(tpl, load_target("anny", tpl), NeutralConfig(method="body"))
    body = nz.body
    assert np.all(nz.target_angles == 0)  # the anny target is anny's reference pose
    rng = np.random.default_rng(5)
    phen = np.array([[0.3, 0.7, 0.6, 0.4, 0.55, 0.5]])
    angles = np.zeros((1, body.n_dofs))
    angles[0, rng.choice(body.n_dofs, 6, replace=False)] = rng.uniform(-12, 12, 6)  # a few joints off the target
    with torch.no_grad():
        posed = body(body.params(1, phen, angles)).posed[0].numpy().astype(np.float64)
        truth = body(body.params(1, phen, np.zeros((1, body.n_dofs)))).posed[0].numpy().astype(np.float64)
    rot = Rotation.from_rotvec([0.2, -0.4, 0.1]).as_matrix()
    mesh = 1.04 * posed @ rot.T + np.array([0.3, -0.2, 1.0])  # in another frame and size
    out = nz.rearticulate_once(mesh, np.array(nz.fitter.settings.phenotype_start))  # the adult start
    # the mesh's size, the body at the target's angles (up to a rigid motion: the root joint trades with the
    # global turn, and the stage aligns the neutral to the target afterwards)
    assert np.abs(align(out, 1.04 * truth).apply(out) - 1.04 * truth).max() < 2e-5
    assert np.abs(align(posed, truth).apply(posed) - truth).max() > 5e-3  # the start was off the target pose
    # a body already at the target pose is left as it is
    again = nz.rearticulate_once(out, phen[0])
    assert np.abs(align(again, out).apply(again) - out).max() < 2e-5


def test_rearticulate_passes_are_made_validated_and_recorded(anny_lite_bodies, tmp_path, monkeypatch):
    from bodydata.mesh import write_mesh
    from bodydata.neutral.neutralize import NeutralConfig, NeutralizeError, Neutralizer, run_neutralize
    from bodydata.templates.template import load_template

    tpl = load_template("anny-lite")
    with pytest.raises(NeutralizeError, match="rearticulate"):
        Neutralizer(tpl, tpl.vertices, NeutralConfig(method="body", rearticulate=-1))
    assert Neutralizer(tpl, tpl.vertices, NeutralConfig(method="arap", rearticulate=3)).rearticulations == 0

    calls = []
    original = Neutralizer.rearticulate_once

    def counted(self, mesh, phenotype):
        calls.append(1)
        return original(self, mesh, phenotype)

    monkeypatch.setattr(Neutralizer, "rearticulate_once", counted)
    paths = []
    for k in range(2):
        paths.append(tmp_path / f"p{k}.ply")
        write_mesh(paths[-1], anny_lite_bodies["poses"][0, k], anny_lite_bodies["faces"])
    man = tmp_path / "m.csv"
    man.write_text("subject,path\n" + "".join(f"a,{p}\n" for p in paths))
    run = lambda n: run_neutralize(man, tpl, tpl.vertices, tmp_path / "out",  # noqa: E731
                                   NeutralConfig(method="body", rearticulate=n), png=False, progress=False)
    first = run(0)
    assert calls == [] and first.rows[0]["rearticulate"] == 0
    second = run(2)  # another number of passes: the neutral is made again
    assert (second.n_done, second.n_skipped) == (1, 0) and len(calls) == 2
    third = run(2)  # the same: kept
    assert (third.n_done, third.n_skipped) == (0, 1) and len(calls) == 2
