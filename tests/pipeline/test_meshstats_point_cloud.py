"""The mesh-stats stage takes point clouds (files without faces), which read_mesh refuses by default."""
from __future__ import annotations

import numpy as np

from bodydata.mesh import write_mesh
from bodydata.pipeline import meshstats
from bodydata.pipeline.manifest import read_rows
from bodydata.pipeline.orchestrate import open_executor, run_stage
from bodydata.pipeline.stage import StageContext


def test_mesh_stats_counts_a_point_cloud(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    pts = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.25, 0.0], [0.0, 0.0, 2.0]])
    (data / "cloud.ply").write_text("ply\nformat ascii 1.0\nelement vertex 4\nproperty double x\nproperty double y\n"
                                    "property double z\nend_header\n" + "".join(f"{x} {y} {z}\n" for x, y, z in pts))
    write_mesh(data / "tet.ply", pts, np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]]))
    with open_executor("inline") as ex:
        s = run_stage(meshstats.make_stage(input=str(data)), StageContext(out_dir=tmp_path / "out"), ex, progress=False)
    assert (s.done, s.failed) == (2, 0), s.failures
    rows = {r.item: r for r in read_rows(tmp_path / "out")}
    cloud = rows["cloud.ply"]
    assert cloud.status == "done"
    assert cloud.columns["n_faces"] == 0 and cloud.columns["area"] == 0.0
    assert (cloud.columns["extent_x"], cloud.columns["extent_y"], cloud.columns["extent_z"]) == (0.5, 0.25, 2.0)
