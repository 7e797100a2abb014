"""ACAP -> mesh forward pass: the blocked per-entry right-hand sides equal a per-vertex loop, in every block layout."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bodydata.features.acap import AcapExtractor  # noqa: E402
from bodydata.features.deformation import edge_weights  # noqa: E402
from bodydata.features.polar import rotation_exp  # noqa: E402
from bodydata.features.reconstruct import AcapReconstructor  # noqa: E402


@pytest.fixture(scope="module")
def batch():
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=2)              # 162 vertices
    q = np.asarray(m.vertices, np.float64)
    faces = np.asarray(m.faces, np.int64)
    rng = np.random.default_rng(1)
    ps = [q * s + 0.02 * rng.normal(size=q.shape) for s in (np.array([1.2, 0.8, 1.0]), np.ones(3), np.array([0.9, 1.1, 1.3]))]
    f = AcapExtractor(q, faces)(np.stack(ps)).f
    f[1, :5, :3] = 0.0                                           # exact zero rotations (series branch)
    f[1, 5:10, :3] = 1e-6                                        # tiny ones
    f[2, :, :3] *= 3.0                                           # large angles, beyond pi
    return q, faces, f


def loop_rhs(q, faces, f):
    """(B, n, 3) b_i = sum_j w_ij (T_i + T_j)/2 (q_i - q_j), T = exp(r) S, by a plain loop over edges."""
    e, w = edge_weights(q, faces, "acap")
    out = np.zeros((len(f), len(q), 3))
    for b in range(len(f)):
        t = []
        for v in range(len(q)):
            s11, s12, s13, s22, s23, s33 = f[b, v, 3:]
            t.append(rotation_exp(f[b, v, :3]) @ np.array([[s11, s12, s13], [s12, s22, s23], [s13, s23, s33]]))
        for (i, j), wij in zip(e, w):
            m = 0.5 * wij * (t[i] + t[j])
            out[b, i] += m @ (q[i] - q[j])
            out[b, j] += m @ (q[j] - q[i])
    return out


@pytest.mark.parametrize("block", [16384, 7, 300])              # one block; blocks of 2 and 100 vertices (B = 3)
def test_rhs_from_features_matches_loop_and_former_path(batch, block):
    q, faces, f = batch
    rec = AcapReconstructor(q, faces, device="cpu")
    rec.block = block
    x = torch.as_tensor(f)
    ref = loop_rhs(q, faces, f)
    b = rec.rhs_from_features(x).permute(2, 0, 1).numpy()
    np.testing.assert_allclose(b, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rec.rhs(rec.gradients_from_features(x)).numpy(), ref, rtol=0, atol=1e-12)
    # a second call reuses the buffers; another batch size replaces them
    np.testing.assert_allclose(rec.rhs_from_features(x).permute(2, 0, 1).numpy(), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rec.rhs_from_features(x[1:]).permute(2, 0, 1).numpy(), ref[1:], rtol=0, atol=1e-12)
    # whole call = the former path (rhs, then solve); the autograd branch gives the same values and gradients
    p = rec(f)
    np.testing.assert_allclose(p, rec.solve(rec.rhs(rec.gradients_from_features(x))).numpy(), rtol=0, atol=1e-12)
    xg = x.clone().requires_grad_(True)
    pg = rec(xg)
    np.testing.assert_allclose(pg.detach().numpy(), p, rtol=0, atol=1e-12)
    w = torch.as_tensor(np.random.default_rng(2).normal(size=p.shape))
    (pg * w).sum().backward()
    xr = x.clone().requires_grad_(True)
    (rec.solve(rec.rhs(rec.gradients_from_features(xr))) * w).sum().backward()
    np.testing.assert_allclose(xg.grad.numpy(), xr.grad.numpy(), rtol=0, atol=1e-10)


def test_anchor_position_in_vertex_major_solve(batch):
    q, faces, f = batch
    rec = AcapReconstructor(q, faces, device="cpu", anchor=5)
    target = np.array([[0.1, -0.2, 0.3], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    p = rec(f, anchor_position=target)
    np.testing.assert_allclose(p[:, 5], target, atol=1e-12)
    moved = rec(f, anchor_position=target[0])
    np.testing.assert_allclose(moved - moved[:, 5:6], p - p[:, 5:6], atol=1e-9)   # only a translation changes
