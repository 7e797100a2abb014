"""ACAP -> mesh solver: gradcheck through the cached factorisation, backends agree, CUDA when present."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bodydata.features.acap import AcapExtractor  # noqa: E402
from bodydata.features.reconstruct import AcapReconstructor  # noqa: E402


@pytest.fixture(scope="module")
def small():
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=1)              # 42 vertices: gradcheck stays fast
    q = np.asarray(m.vertices, np.float64)
    faces = np.asarray(m.faces, np.int64)
    rng = np.random.default_rng(0)
    p = q * np.array([1.2, 0.8, 1.0]) + 0.03 * rng.normal(size=q.shape)
    f = AcapExtractor(q, faces)(p).f
    return q, faces, f


@pytest.mark.parametrize("backend", ["cholespy", "scipy"])
def test_gradcheck(small, backend):
    q, faces, f = small
    rec = AcapReconstructor(q, faces, device="cpu", backend=backend)
    x = torch.tensor(f, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, len(q), 3, dtype=torch.float64)            # a fixed linear read-out keeps the check small
    # fast mode: compares random projections of the analytic and numerical Jacobians (all 378 inputs)
    assert torch.autograd.gradcheck(lambda y: rec(y) * w, (x,), eps=1e-6, atol=1e-8, rtol=1e-4, fast_mode=True)


def test_backends_and_batch_agree(small):
    q, faces, f = small
    batch = np.concatenate([f, f * 0.5, f[:, ::-1] * 0 + f.mean(1, keepdims=True)])
    a = AcapReconstructor(q, faces, device="cpu", backend="cholespy")(batch)
    b = AcapReconstructor(q, faces, device="cpu", backend="scipy")(batch)
    np.testing.assert_allclose(a, b, atol=1e-10)
    one = AcapReconstructor(q, faces, device="cpu")
    for k in range(len(batch)):
        np.testing.assert_allclose(one(batch[k]), a[k], atol=1e-10)
    # the anchor vertex sits where asked
    out = one(batch, anchor_position=np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(out[:, 0], np.broadcast_to([1.0, 2.0, 3.0], (len(batch), 3)))


def test_solve_matches_dense_normal_equations(small):
    q, faces, f = small
    rec = AcapReconstructor(q, faces, device="cpu")
    t = rec.gradients_from_features(torch.as_tensor(f))
    b = rec.rhs(t)[0].numpy()
    p = rec(f)[0]
    # reference: Eq. 6 assembled edge by edge in a loop
    from bodydata.features.deformation import edge_weights

    e, w = edge_weights(q, faces)
    n = len(q)
    lap = np.zeros((n, n))
    ref_b = np.zeros((n, 3))
    tn = t[0].numpy()
    for (i, j), wij in zip(e, w):
        lap[i, i] += wij
        lap[j, j] += wij
        lap[i, j] -= wij
        lap[j, i] -= wij
        ref_b[i] += wij * 0.5 * (tn[i] + tn[j]) @ (q[i] - q[j])
        ref_b[j] += wij * 0.5 * (tn[i] + tn[j]) @ (q[j] - q[i])
    np.testing.assert_allclose(b, ref_b, atol=1e-12)
    np.testing.assert_allclose(lap[1:] @ p, ref_b[1:], atol=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(small):
    q, faces, f = small
    cpu = AcapReconstructor(q, faces, device="cpu")(f)
    rec = AcapReconstructor(q, faces, device="cuda")
    x = torch.tensor(np.repeat(f, 70, axis=0), device="cuda", requires_grad=True)   # 210 right-hand sides > 128
    out = rec(x)
    np.testing.assert_allclose(out[0].detach().cpu().numpy(), cpu[0], atol=1e-9)
    out.sum().backward()
    assert torch.all(torch.isfinite(x.grad))
