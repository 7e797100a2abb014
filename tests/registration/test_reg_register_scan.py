"""Registration onto a virtual scan (a point cloud, no faces) of an anny body with known truth."""
from __future__ import annotations

import numpy as np

from bodydata.registration.register import RegistrationConfig

FAST = dict(device="cpu", coarse_dists=(0.10, 0.05, 0.03), coarse_iters=25, fine_dists=(0.03, 0.02, 0.01, 0.01))


def test_a_point_cloud_scan_registers_as_well_as_its_mesh(anny_lite_template):
    from bodydata.features.acap import AcapExtractor
    from bodydata.generator.bodies import anny_bodies, transfer_landmarks
    from bodydata.mesh.scanner import ScannerConfig, virtual_scan
    from bodydata.registration.metrics import med
    from bodydata.registration.prior import build_prior
    from bodydata.registration.register import Registrar

    t = anny_lite_template
    topo = "notoes_collapse10pc"
    train = anny_bodies(topo, 4, 3, seed=11)
    test = anny_bodies(topo, 1, 1, seed=11, first_identity=500, extra_topologies=("anny",))
    prior = build_prior(AcapExtractor(t.vertices, t.faces)(train.vertices[topo]).f, t.vertices, t.faces,
                        t.part_labels, 40, "anny-lite")
    reg = Registrar(t, prior, RegistrationConfig(**FAST))
    truth = test.vertices[topo][0]
    src, faces = test.vertices["anny"][0], test.faces["anny"]
    lm_mesh = transfer_landmarks(t.landmarks, truth, src)
    scan = virtual_scan(src, faces, ScannerConfig(n_points=30000, noise_mm=1.0))   # with its floor patch
    ids = scan.nearest_points(src[list(lm_mesh.values())], 0.02)
    lm_scan = {k: int(i) for k, i in zip(lm_mesh, ids) if i >= 0}
    assert len(lm_scan) >= 15
    on_mesh = reg.register(src, faces, lm_mesh)
    on_scan = reg.register(scan.points, np.zeros((0, 3), np.int64), lm_scan)
    assert on_mesh.status == "done" and on_scan.status == "done", on_scan.reason
    mesh_err, scan_err = med(on_mesh.vertices, truth), med(on_scan.vertices, truth)
    # the scan has holes (under the arms, the soles), a floor and 1 mm noise: within 30 % (and 3 mm) of the clean case
    assert scan_err < 1.3 * mesh_err + 0.003, (scan_err, mesh_err)
