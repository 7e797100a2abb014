"""The scape profile: a held-out SCAPE-order body, remeshed (jittered subdivision, shuffled), converted back to the
paper's 12,500-vertex connectivity and compared vertex by vertex with the original; and the remesher's exact map."""
from __future__ import annotations

import os

import numpy as np
import pytest

from bodydata.errors import BodydataError
from bodydata.registration.remesh import remesh_body


def _octahedron():
    v = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float64)
    f = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]], np.int64)
    return v, f


def test_remesh_map_is_exact_and_order_is_new():
    v, f = _octahedron()
    lm = {"head_top": 4, "crotch": 5}
    r = remesh_body(v, f, lm, seed=3)
    assert r.vertices.shape == (6 + 12, 3) and r.faces.shape == (4 * len(f), 3)
    # every target vertex is exactly its barycentric combination of a source face (a plain loop as reference)
    for j in range(len(r.vertices)):
        corners = v[f[r.face_ids[j]]]
        assert np.allclose(r.barycentrics[j] @ corners, r.vertices[j], atol=1e-12)
        assert np.isclose(r.barycentrics[j].sum(), 1.0) and r.barycentrics[j].min() >= 0
    # the surface is the source's: every target vertex lies on the octahedron |x|+|y|+|z| = 1
    assert np.allclose(np.abs(r.vertices).sum(1), 1.0)
    # no target vertex sits on a source vertex (jitter) and the faces form a closed manifold
    assert np.min(np.linalg.norm(r.vertices[:, None] - v[None], axis=2)) > 1e-6
    from bodydata.mesh.topology import is_watertight

    assert is_watertight(r.faces)
    # landmarks: the nearest target vertex to each landmark vertex
    for k, i in lm.items():
        d = np.linalg.norm(r.vertices - v[i], axis=1)
        assert r.landmarks[k] == int(np.argmin(d))
    assert np.isclose(r.landmark_offset, np.mean([np.linalg.norm(r.vertices[r.landmarks[k]] - v[i]) for k, i in lm.items()]))
    # deterministic per seed, different across seeds
    again = remesh_body(v, f, lm, seed=3)
    assert np.array_equal(again.vertices, r.vertices) and np.array_equal(again.faces, r.faces)
    assert not np.array_equal(remesh_body(v, f, lm, seed=4).vertices, r.vertices)


def test_remesh_bad_input():
    v, f = _octahedron()
    with pytest.raises(BodydataError, match="landmarks"):
        remesh_body(v, f, {"nose_tip": 99})
    with pytest.raises(BodydataError, match="face indices"):
        remesh_body(v, f + 10, {})


# A shorter schedule than the defaults (3 coarse and 4 fine rounds) so the 12,500-vertex case fits a test; the
# landmarks keep their full weight (the remeshed landmarks sit within ~1 mm of the true ones: exact correspondences,
# ``bodydata convert --landmark-schedule 1``).
TEST_CONFIG = {"device": "cpu", "coarse_dists": (0.10, 0.05, 0.03), "coarse_iters": 25,
               "fine_dists": (0.03, 0.02, 0.01, 0.01), "fine_landmark_scale": (1.0,),
               "fine_icp_scale": (1.0, 1.0, 3.0, 10.0)}
PAIRS = "dhnn/bodyrep_corres.txt"   # the paper's 79 landmark pairs (reference <-> SMPL vertex ids)
TRAIN = ["scape/original_12500/mesh055.off"] + [f"dhnn/template_connectivity/{i}.obj" for i in range(8)]
HELD_OUT = "scape/original_12500/mesh002.off"


@pytest.mark.skipif(not os.environ.get("BODYDATA_SLOW_TESTS"),
                    reason="0.5-4 min on 2 cores (a 12,500-vertex scape prior and a 50k-vertex conversion): "
                           "set BODYDATA_SLOW_TESTS=1 to run it")
def test_convert_remeshed_scape_body(shared_data, tmp_path):
    """SCAPE mesh002 (not in the prior), remeshed to ~50k shuffled vertices, converted to the paper's 12,500-vertex
    connectivity with the recommended scape prior (9 SCAPE-order bodies plus SCAPE's lifted poses without mesh002's
    own, cotangent weights; docs/templates.md), the shipped landmarks plus the paper's 79 pairs at full weight and a
    short schedule, then compared with the original vertex by vertex.

    The bound below is the measured figure plus ~20 %, so a regression fails."""
    from bodydata.features.acap import AcapExtractor
    from bodydata.mesh import read_mesh
    from bodydata.mesh.alignment import align
    from bodydata.registration.metrics import med, surface_distances
    from bodydata.registration.prior import build_prior
    from bodydata.registration.register import Registrar, RegistrationConfig
    from bodydata.templates.template import build_template, load_template

    files = {"mesh": shared_data / "scape" / "original_12500" / "mesh000.off",
             "faces": shared_data / "dhnn" / "template_connectivity" / "0.obj",
             "labels": shared_data / "spring" / "data" / "body_part.obj"}
    coarse = shared_data / "scape" / "simplified_2161"
    needed = list(files.values()) + [shared_data / p for p in TRAIN + [HELD_OUT, PAIRS]] + [coarse / "1.obj"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        pytest.skip(f"real data absent: {missing[:3]}")
    build_template("scape", files).save(tmp_path / "scape")
    tpl = load_template(tmp_path / "scape")
    assert tpl.n_vertices == 12500 and {"thumb_tip_L", "thumb_tip_R"} <= set(tpl.landmarks)
    from bodydata.templates.landmarks import read_landmark_pairs

    tpl.landmarks.update(read_landmark_pairs(shared_data / PAIRS, n_template=12500)[0])

    def body(rel):
        return read_mesh(shared_data / rel, expected_vertices=12500, check_degenerate=False).vertices

    from bodydata.registration.lift import CageLift

    cage = read_mesh(coarse / "1.obj")
    lift = CageLift.fit(cage.vertices, cage.faces, tpl.vertices, smooth=1)
    # SCAPE pose k is mesh k-1: pose 3 is the held-out mesh002
    lifted = lift(np.stack([read_mesh(coarse / f"{k}.obj").vertices for k in range(1, 72) if k != 3]))
    train = np.stack([align(v, tpl.vertices).apply(v) for v in [*map(body, TRAIN), *lifted]])
    feats = AcapExtractor(tpl.vertices, tpl.faces, weighting="cotangent")(train).f
    prior = build_prior(feats, tpl.vertices, tpl.faces, tpl.part_labels, 100, "scape", weighting="cotangent")

    truth = body(HELD_OUT)
    target = remesh_body(truth, tpl.faces, tpl.landmarks, seed=0)
    assert len(target.vertices) > 45_000 and target.landmark_offset < 0.003
    res = Registrar(tpl, prior, RegistrationConfig(**TEST_CONFIG)).register(target.vertices, target.faces,
                                                                            target.landmarks)
    assert res.status == "done", res.reason
    got = med(res.vertices, truth)
    sd = surface_distances(res.vertices, tpl.faces, target.vertices, target.faces)
    print(f"\nscape mesh002 remeshed -> converted: MED {1000 * got:.2f} mm, point-to-mesh "
          f"{1000 * sd.a_to_b.mean():.2f} / {1000 * sd.b_to_a.mean():.2f} mm")
    # measured 2026-11-26 (CPU): MED 4.80 mm with the 79 pairs, thumb tips and full-weight landmarks (7.39 mm with
    # the 27 named landmarks relaxed to 0.1; 8.25 mm with the 9 bodies alone and ACAP weights); the default full
    # schedule with the 12-body prior reach 3.3 mm on this body (benchmarks/bench_convert_scape.py)
    assert got <= 0.0058, f"MED {1000 * got:.2f} mm"
    assert sd.a_to_b.mean() < 0.001 and sd.b_to_a.mean() < 0.001
