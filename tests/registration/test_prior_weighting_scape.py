"""Why scape priors use cotangent weights: on the paper's 12,500-vertex triangulation the ACAP round trip (features ->
mesh) with the ACAP authors' edge weights shrinks a posed SCAPE body by ~2 %, with cotangent weights it keeps its size."""
from __future__ import annotations

import numpy as np
import pytest


def test_cotangent_round_trip_keeps_the_size_of_a_scape_body(shared_data, tmp_path):
    from bodydata.features.acap import AcapExtractor
    from bodydata.features.reconstruct import reconstruct
    from bodydata.mesh import read_mesh
    from bodydata.mesh.alignment import align
    from bodydata.templates.template import build_template, load_template

    files = {"mesh": shared_data / "scape" / "original_12500" / "mesh000.off",
             "faces": shared_data / "dhnn" / "template_connectivity" / "0.obj",
             "labels": shared_data / "spring" / "data" / "body_part.obj"}
    body_path = shared_data / "scape" / "original_12500" / "mesh002.off"
    missing = [str(p) for p in [*files.values(), body_path] if not p.is_file()]
    if missing:
        pytest.skip(f"real data absent: {missing[:3]}")
    build_template("scape", files).save(tmp_path / "scape")
    tpl = load_template(tmp_path / "scape")
    body = read_mesh(body_path, expected_vertices=12500, check_degenerate=False).vertices
    body = align(body, tpl.vertices).apply(body)
    scale, med = {}, {}
    for weighting in ("acap", "cotangent"):
        f = AcapExtractor(tpl.vertices, tpl.faces, weighting=weighting)(body[None]).f
        back = np.asarray(reconstruct(tpl.vertices, tpl.faces, f, weighting=weighting))[0]
        scale[weighting] = float(align(back, body, scale=True).scale)
        med[weighting] = 1000 * np.linalg.norm(back - back.mean(0) - (body - body.mean(0)), axis=1).mean()
    # measured: acap scale 1.0199 (MED 10.2 mm after the best translation), cotangent 1.0002 (MED 1.1 mm)
    assert scale["acap"] > 1.01
    assert abs(scale["cotangent"] - 1.0) < 0.003
    assert med["cotangent"] < 2.0 < med["acap"]
