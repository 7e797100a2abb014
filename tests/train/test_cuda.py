"""On a CUDA machine: the same few steps on the GPU as on the CPU (skipped where there is no GPU)."""
from __future__ import annotations

import pytest
import torch
import yaml

from bodydata.model import load
from bodydata.train.trainer import train


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_training_matches_cpu(tiny_dataset, tmp_path):
    ds, _ = tiny_dataset
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"dhnn": {"encoder_widths": [32, 32], "branch_widths": [32, 64]},
                                   "train": {"batch_size": 4, "lr": 1e-3}}))
    train(ds, tmp_path / "cpu", config=cfg, epochs=2, device="cpu", progress=False)
    train(ds, tmp_path / "gpu", config=cfg, epochs=2, device="cuda", progress=False)
    a = load(tmp_path / "cpu", "last", device="cpu").net.state_dict()
    b = load(tmp_path / "gpu", "last", device="cpu").net.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-4, msg=k)
