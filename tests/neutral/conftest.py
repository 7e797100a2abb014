"""Fixtures of the neutral-pose tests: anny identities posed by the generator, with their true neutral."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def anny_lite_bodies():
    """5 identities x 3 poses of anny at notoes_collapse10pc (1,229 vertices), seed 0.

    Returns dict: ``poses`` (5, 3, n, 3) float64, ``neutral`` (5, n, 3) float64 (each identity's
    reference pose = true neutral), ``names`` (5, 3) pose stems, ``faces`` (m, 3) int64.
    """
    from bodydata.generator.synth import AnnySynth

    synth = AnnySynth(topology="notoes_collapse10pc", check_intersections=False, device="cpu")
    poses, neutral, names = [], [], []
    for i in range(5):
        ident = synth.identity(0, i, 3)
        neutral.append(ident.neutral["notoes_collapse10pc"])
        poses.append(np.stack([b.vertices for b in ident.bodies]))
        names.append([b.stem for b in ident.bodies])
    return {"poses": np.stack(poses), "neutral": np.stack(neutral), "names": np.array(names),
            "faces": synth.faces["notoes_collapse10pc"]}
