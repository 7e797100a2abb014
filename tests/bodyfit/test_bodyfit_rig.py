"""The torch rig equals the generator's numpy rig; anny's posed body is exactly its skinning of the rest body."""
import numpy as np
import pytest
import torch

LITE = "notoes_collapse10pc"


@pytest.fixture(scope="module")
def lite_body():
    from bodydata.bodyfit.body import AnnyBody

    return AnnyBody(LITE)


def test_torch_rig_matches_numpy_rig(lite_body):
    from bodydata.generator.poses import PoseRig

    rig = PoseRig.from_reference(lite_body.bone_labels, lite_body.rest_heads)
    angles = np.random.default_rng(0).normal(0.0, 40.0, (3, lite_body.n_dofs))
    got = lite_body.rig.pose_parameters(torch.as_tensor(angles)).numpy()
    np.testing.assert_allclose(got, rig.pose_parameters(angles), atol=1e-12)
    # per-DOF loop: each DOF alone turns its bones by its share about its axis (Rodrigues by hand)
    from scipy.spatial.transform import Rotation

    for d in range(0, lite_body.n_dofs, 7):
        one = np.zeros((1, lite_body.n_dofs))
        one[0, d] = 33.0
        rot = lite_body.rig.rotations(torch.as_tensor(one))[0].numpy()
        for b, axis in zip(rig.dof_bones[d], rig.dof_axes[d]):
            want = Rotation.from_rotvec(axis * np.deg2rad(33.0) * rig.dof_share[d]).as_matrix()
            np.testing.assert_allclose(rot[b], want, atol=1e-12)


def test_limit_penalty_closed_form():
    from bodydata.bodyfit.rig import limit_penalty

    lo, hi = torch.tensor([-10.0, 0.0]), torch.tensor([10.0, 90.0])
    a = torch.tensor([[5.0, 45.0], [-30.0, 110.0]])
    np.testing.assert_allclose(limit_penalty(a, lo, hi).numpy(), [0.0, 2.0**2 + 2.0**2])


def test_posed_body_is_skinning_of_rest(lite_body):
    p = lite_body.params(2, phenotype=np.array([0.2, 0.7, 0.4, 0.6, 0.3, 0.8]),
                         angles=np.random.default_rng(1).normal(0.0, 25.0, lite_body.n_dofs))
    with torch.no_grad():
        out = lite_body(p)
        m = lite_body.skinning(out.bone_transforms)
    rest_h = torch.cat([out.rest, torch.ones_like(out.rest[..., :1])], -1)
    again = (m @ rest_h[..., None])[..., :3, 0]
    np.testing.assert_allclose(again.numpy(), out.posed.numpy(), atol=1e-10)
    # the similarity is applied last: x = s R v + t
    from scipy.spatial.transform import Rotation

    r = torch.as_tensor(Rotation.from_rotvec([0.3, -1.0, 0.5]).as_matrix())
    p.rotation, p.translation, p.scale = r.repeat(2, 1, 1), torch.tensor([[1.0, 2.0, 3.0]] * 2), torch.tensor([2.0, 2.0])
    with torch.no_grad():
        moved = lite_body(p).vertices
    np.testing.assert_allclose(moved.numpy(), (2.0 * out.posed @ r.T + torch.tensor([1.0, 2.0, 3.0])).numpy(),
                               atol=1e-12)


def test_posed_subset_equals_the_full_forward(lite_body):
    """One identity's rest model reused for many poses, skinned at a vertex subset: anny's own numbers."""
    rng = np.random.default_rng(2)
    p = lite_body.params(3, phenotype=np.array([0.9, 0.8, 0.1, 0.3, 0.7, 0.2]),
                         angles=rng.normal(0.0, 25.0, (3, lite_body.n_dofs)))
    ids = torch.as_tensor(np.sort(rng.choice(lite_body.n_vertices, 200, replace=False)))
    with torch.no_grad():
        full = lite_body(p).posed
        rest_v, rest_p = lite_body.rest_model(p.phenotype[:1])
        got = lite_body.posed_subset(rest_v, rest_p, p.angles, ids)
    np.testing.assert_allclose(got.numpy(), full[:, ids].numpy(), atol=1e-12)
    # the dense weight matrix is the sparse (index, weight) lists, entry by entry
    dense = lite_body.dense_weights.numpy()
    for v in (0, 77, lite_body.n_vertices - 1):
        want = np.zeros(dense.shape[1])
        for b, w in zip(lite_body.weight_bones[v].numpy(), lite_body.weights[v].numpy()):
            want[b] += w
        np.testing.assert_allclose(dense[v], want, atol=1e-15)
