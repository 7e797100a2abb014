"""A tiny anny-lite dataset (4 identities x 3 poses, 1,229 vertices) built once for the model and training tests."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """(dataset folder, synth folder): subject split with one test identity."""
    from bodydata.dataset.build import build_dataset
    from bodydata.generator.synth import run_synth
    from bodydata.sources.scan import scan_source

    root = tmp_path_factory.mktemp("tiny_ds")
    synth = run_synth(root / "synth", 4, 3, seed=5, topology="notoes_collapse10pc", sheet=False, progress=False)
    scan_source("anny", synth.out_dir, root / "anny.csv", progress=False)
    build_dataset([root / "anny.csv"], "anny-lite", root / "ds", split="subject", n_test_neutral=1, n_test_pose=1,
                  seed=0, progress=False)
    return root / "ds", synth.out_dir
