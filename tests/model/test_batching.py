"""Half-neutral batches over several processes, and the per-sample noise: one step splits over ranks exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bodydata.dataset.torch_dataset import HalfNeutralBatchSampler
from bodydata.errors import BodydataError
from bodydata.train.noise import sample_noise


def test_ranks_share_of_each_batch_is_the_single_process_batch():
    flags = np.array([True] * 5 + [False] * 13)
    single = list(HalfNeutralBatchSampler(flags, 8, seed=3))
    ranks = [list(HalfNeutralBatchSampler(flags, 8, seed=3, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for b, full in enumerate(single):
        a, c = ranks[0][b], ranks[1][b]
        assert a[:2] + c[:2] == full[:4]  # neutral halves
        assert a[2:] + c[2:] == full[4:]  # pose halves
    with pytest.raises(BodydataError, match="divides"):
        HalfNeutralBatchSampler(flags, 6, num_replicas=2)


def test_noise_depends_on_the_sample_place_not_on_the_batch():
    a = sample_noise(0, 2, 5, [0, 1, 2, 3], 7)
    b = sample_noise(0, 2, 5, [2, 3], 7)
    torch.testing.assert_close(a[2:], b)
    assert not torch.allclose(a[0], a[1])
    assert not torch.allclose(sample_noise(1, 2, 5, [0], 7), a[:1])
    assert abs(float(sample_noise(0, 0, 0, list(range(400)), 50).std()) - 1.0) < 0.02
