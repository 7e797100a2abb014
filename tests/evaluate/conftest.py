"""A tiny anny-lite dataset (4 identities x 3 poses, 1,229 vertices, 2 test identities) and tiny runs on it."""
from __future__ import annotations

import pytest

from bodydata.dataset.build import build_dataset
from bodydata.generator.synth import run_synth
from bodydata.sources.scan import scan_source

TINY_CONFIG = "dhnn: {encoder_widths: [64, 64], branch_widths: [64, 128]}\n"


@pytest.fixture(scope="session")
def eval_dataset(tmp_path_factory):
    """(dataset folder, synth folder): subject split with two test identities (for pose transfer)."""
    root = tmp_path_factory.mktemp("eval_ds")
    synth = run_synth(root / "synth", 4, 3, seed=5, topology="notoes_collapse10pc", sheet=False, progress=False).out_dir
    scan_source("anny", synth, root / "anny.csv", progress=False)
    build_dataset([root / "anny.csv"], "anny-lite", root / "ds", split="subject", n_test_neutral=2, n_test_pose=4,
                  seed=0, progress=False)
    return root / "ds", synth


@pytest.fixture(scope="session")
def dhnn_run(eval_dataset, tmp_path_factory):
    """A small dhnn trained for 3 epochs (decodes body-like meshes; not accurate)."""
    from bodydata.train.trainer import train

    root = tmp_path_factory.mktemp("eval_run")
    (root / "tiny.yaml").write_text(TINY_CONFIG)
    train(eval_dataset[0], root / "dhnn", config=root / "tiny.yaml", epochs=3, batch_size=6, progress=False)
    return root / "dhnn"


@pytest.fixture(scope="session")
def pca_run(eval_dataset, tmp_path_factory):
    from bodydata.train.trainer import train

    root = tmp_path_factory.mktemp("eval_pca")
    train(eval_dataset[0], root / "pca", arch="pca", epochs=1, batch_size=6, progress=False)
    return root / "pca"


@pytest.fixture(scope="session")
def dhnn_model(dhnn_run):
    from bodydata.model import load

    return load(dhnn_run, device="cpu")
