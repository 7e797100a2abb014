"""Un-posing through a known skeleton (inverse LBS) and robust fusion of un-posed meshes."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("anny")


@pytest.fixture(scope="module")
def lite_body():
    from bodydata.bodyfit.body import AnnyBody

    return AnnyBody("notoes_collapse10pc")


def _posed(body, phen, angles):
    with torch.no_grad():
        return body(body.params(len(angles), phen, angles))


def test_unpose_known_skeleton_returns_rest(lite_body):
    from scipy.spatial.transform import Rotation

    from bodydata.generator.poses import key_pose_vector
    from bodydata.neutral.unpose import repose, unpose

    rng = np.random.default_rng(3)
    angles = np.stack([key_pose_vector("sitting"), key_pose_vector("arms_raised")])
    phen = rng.uniform(0.2, 0.8, (2, 6))
    p = lite_body.params(2, phen, angles)
    out = _posed(lite_body, phen, angles)
    rot = Rotation.random(2, random_state=4).as_matrix()
    scale = np.array([0.9, 1.3])
    shift = rng.normal(0, 1, (2, 3))
    p.rotation, p.translation, p.scale = (torch.as_tensor(x, dtype=lite_body.dtype) for x in (rot, shift, scale))
    mesh = scale[:, None, None] * out.posed.numpy() @ np.swapaxes(rot, 1, 2) + shift[:, None]
    rest = unpose(lite_body, p, mesh)
    # the mesh's size is kept: the rest body scaled by the similarity's scale
    np.testing.assert_allclose(rest, scale[:, None, None] * out.rest.numpy(), atol=1e-9)
    back = repose(lite_body, phen, angles, out.rest.numpy())
    np.testing.assert_allclose(back, out.posed.numpy(), atol=1e-9)
    # un-posed at the mesh's size (s != 1) and re-posed into the same angles: the mesh in anny's frame, same size
    again = repose(lite_body, phen, angles, rest, scale)
    np.testing.assert_allclose(again, scale[:, None, None] * out.posed.numpy(), atol=1e-9)
    # residual detail rides along in the bone frame: a bump added to the posed mesh comes back turned by the rotation
    # nearest the vertex's blended transform; where one bone drives the vertex that is exactly M_i^-1
    from scipy.linalg import polar

    from bodydata.neutral.unpose import skinning_transforms

    m_all = skinning_transforms(lite_body, _slice(p, 0))[0, :, :3, :3]
    top = lite_body.weights.numpy().max(1)
    rigid, blended = int(np.argmax(top)), int(np.argmin(top))
    assert top[rigid] > 0.999 and top[blended] < 0.6
    bump = np.zeros_like(mesh[0])
    bump[[rigid, blended]] = [[0.0, 0.0, 0.01], [0.02, -0.01, 0.0]]
    rest2 = unpose(lite_body, _slice(p, 0), out.posed.numpy()[0] * scale[0] @ rot[0].T + shift[0] + bump @ rot[0].T * scale[0])
    moved = rest2 - scale[0] * out.rest.numpy()[0]
    np.testing.assert_allclose(moved[rigid], scale[0] * np.linalg.solve(m_all[rigid], bump[rigid]), atol=1e-9)
    q = polar(m_all[blended])[0]
    np.testing.assert_allclose(moved[blended], scale[0] * q.T @ bump[blended], atol=1e-9)
    assert abs(np.linalg.norm(moved[blended]) - scale[0] * np.linalg.norm(bump[blended])) < 1e-9
    others = np.setdiff1d(np.arange(len(moved)), [rigid, blended])
    assert np.abs(moved[others]).max() < 1e-9


def _slice(p, i):
    from bodydata.bodyfit.body import BodyParams

    return BodyParams(*(getattr(p, f)[i:i + 1] for f in ("phenotype", "angles", "rotation", "translation", "scale")))


def test_unpose_rejects_bad_shape(lite_body):
    from bodydata.neutral.unpose import UnposeError, unpose

    with pytest.raises(UnposeError, match="expected finite"):
        unpose(lite_body, lite_body.params(1), np.zeros((5, 3)))


def test_fuse_copies_returns_mesh(anny_lite_bodies):
    from bodydata.neutral.fuse import fuse
    from bodydata.templates.template import load_template

    tpl = load_template("anny-lite")
    mesh = anny_lite_bodies["neutral"][0]
    copies = np.stack([mesh] * 3)
    out = fuse(copies, tpl.faces, tpl.part_labels)
    np.testing.assert_allclose(out.vertices, mesh, atol=1e-9)
    np.testing.assert_allclose(out.part_weights, 1.0)


def test_fuse_outvotes_broken_region(anny_lite_bodies):
    from scipy.spatial.transform import Rotation

    from bodydata.neutral.fuse import fuse
    from bodydata.templates.parts import PART_INDEX
    from bodydata.templates.template import load_template

    tpl = load_template("anny-lite")
    mesh = anny_lite_bodies["neutral"][1]
    rng = np.random.default_rng(0)
    poses = []
    for k in range(4):  # the same body in four rigid placements, as un-posed meshes come
        r = Rotation.from_rotvec(rng.normal(0, 0.2, 3)).as_matrix()
        poses.append(mesh @ r.T + rng.normal(0, 0.1, 3))
    poses = np.stack(poses)
    arm = tpl.part_labels == PART_INDEX["forearm_L"]
    poses[2, arm] += np.array([0.1, 0.0, 0.0]) @ Rotation.from_rotvec(rng.normal(0, 0.2, 3)).as_matrix()
    out = fuse(poses, tpl.faces, tpl.part_labels)
    fused = out.vertices
    from bodydata.mesh.alignment import vertex_distances

    err = vertex_distances(fused, mesh) * 1000.0
    assert err.max() < 0.5, err.max()  # the displaced forearm (10 cm) is out-voted
    assert out.part_weights[2, PART_INDEX["forearm_L"]] < 0.01
    naive = vertex_distances(np.mean(np.stack([p - p.mean(0) for p in poses]), 0), mesh) * 1000.0
    assert naive.max() > 20.0  # a plain mean would carry a quarter of the displacement


def test_part_strain_closed_form():
    from bodydata.neutral.fuse import part_strain

    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], float)
    f = np.array([[0, 1, 2], [1, 3, 2]])
    labels = np.array([0, 0, 1, 1])
    s = part_strain(v, v * 2.0, f, labels, 3)
    np.testing.assert_allclose(s, [np.log(2.0), np.log(2.0), 0.0])
