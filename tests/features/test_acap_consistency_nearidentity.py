"""Rotation consistency on near-identity bodies: fast (the greedy T-join scales), same logs, valid greedy T-join.

A near-identity body (template plus 0.5 mm noise, or another phenotype at rest) has tiny rotations whose
axes are nearly arbitrary, so thousands of faces are frustrated. The dense all-terminals Dijkstra of the
former greedy T-join took 3-60 s on a 12k body; these tests pin the 1,229-vertex case and its memory.
"""
from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from bodydata.features.acap import AcapExtractor
from bodydata.features.consistency import (
    DualGraph,
    axis_edge_signs,
    axis_objective,
    improve_signs,
    propagate_signs,
    tjoin_signs,
)
from bodydata.features.polar import polar_decompose, rotation_log
from bodydata.mesh.topology import edges as mesh_edges


@pytest.fixture(scope="module")
def near_identity():
    """(reference (1229, 3), faces, bodies (2, 1229, 3): reference + 0.5 mm noise, another phenotype at rest)."""
    anny = pytest.importorskip("anny")
    import torch

    model = anny.Anny(topology="notoes_collapse10pc")
    with torch.no_grad():
        ref = model()["vertices"][0].double().numpy()
        pheno = {"gender": 0.8, "age": 0.6, "muscle": 0.3, "weight": 0.7, "height": 0.4, "proportions": 0.6}
        other = model(phenotype_kwargs={k: torch.tensor([v]) for k, v in pheno.items()})["vertices"][0].double().numpy()
    noisy = ref + np.random.default_rng(0).normal(scale=5e-4, size=ref.shape)
    assert np.abs(other - ref).max() > 0.02  # the phenotype really changed the body
    return ref, np.asarray(model.faces, np.int64), np.stack([noisy, other])


def test_near_identity_features_fast_and_equal_to_principal_logs(near_identity):
    ref, faces, bodies = near_identity
    ext = AcapExtractor(ref, faces)
    ext(bodies)  # warm up
    t0 = time.perf_counter()
    res = ext(bodies)
    seconds = time.perf_counter() - t0
    assert seconds < 0.5, f"2 near-identity bodies took {seconds:.2f} s"
    # every rotation here is far below pi: whichever axis signs the solver picks, the turns undo them and the
    # min-norm anchor returns the principal logs (the former solver gave these too, to 1e-15)
    principal = AcapExtractor(ref, faces, consistency="none")(bodies).f
    theta = np.linalg.norm(principal[..., :3], axis=-1)
    assert theta.max() < 1.0
    np.testing.assert_allclose(res.f, principal, rtol=0, atol=1e-12)
    # the T-join candidate is kept only when it beats propagation plus local improvement
    rot, _ = polar_decompose(ext.fit.gradients(bodies))
    aa = rotation_log(rot)
    for b in range(len(bodies)):
        sigma = axis_edge_signs(aa.axis[b], ext.edges)
        local = improve_signs(propagate_signs(aa.axis[b], ext.edges), sigma, ext.edges, len(ref))
        assert res.axis_cost[b] <= axis_objective(local, sigma, ext.edges)
        assert res.axis_cost[b] == axis_objective(res.signs[b], sigma, ext.edges)


def test_greedy_tjoin_memory_does_not_grow_with_frustrated_faces(near_identity):
    ref, faces, bodies = near_identity
    ext = AcapExtractor(ref, faces)
    rot, _ = polar_decompose(ext.fit.gradients(bodies[:1]))
    aa = rotation_log(rot)
    sigma = axis_edge_signs(aa.axis[0], ext.edges)
    tracemalloc.start()
    tjoin_signs(sigma, ext.dual, 0, len(ref), "greedy")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # hundreds of frustrated faces here; a (terminals x dual vertices) table would be ~25 MB
    assert peak < 4 * 2**20, f"greedy T-join peak {peak / 2**20:.1f} MiB"


def test_greedy_tjoin_is_a_valid_near_optimal_tjoin(sphere):
    v, f = sphere
    n = len(v)
    e = mesh_edges(f)
    dual = DualGraph.from_faces(n, f)
    rng = np.random.default_rng(5)
    ratios = []
    for trial in range(6):
        axis = rng.normal(size=(n, 3))
        axis /= np.linalg.norm(axis, axis=1, keepdims=True)
        if trial == 0:
            axis[:10] = 0.0  # zero rotations: their edges are free
        sigma = axis_edge_signs(axis, e)
        greedy = tjoin_signs(sigma, dual, 7, n, "greedy")
        exact = tjoin_signs(sigma, dual, 7, n, "exact")
        assert greedy[7] == 1 and set(np.unique(greedy)) <= {-1, 1}
        g, x = axis_objective(greedy, sigma, e), axis_objective(exact, sigma, e)
        assert x <= g
        ratios.append(g / max(x, 1))
        # deterministic
        assert np.array_equal(greedy, tjoin_signs(sigma, dual, 7, n, "greedy"))
    assert max(ratios) < 1.3, ratios
