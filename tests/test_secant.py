"""Broyden's secant update against a per-element loop, its secant condition, a linear map and a zero step."""
from __future__ import annotations

import numpy as np
import torch

from bodydata.secant import broyden_update


def test_broyden_update_matches_a_loop_and_keeps_a_linear_map():
    """The rank-one update against a per-element loop; it explains the step exactly (secant condition) and leaves the
    Jacobian of a linear map unchanged."""
    rng = np.random.default_rng(3)
    b, lat, n = 2, 5, 7
    dp = rng.standard_normal((b, lat, n * 3))            # one row per unknown
    step = rng.standard_normal((b, lat))
    change = rng.standard_normal((b, n * 3))
    out = broyden_update(torch.as_tensor(dp), torch.as_tensor(step), torch.as_tensor(change)).numpy()
    loop = dp.copy()
    for i in range(b):
        miss = change[i] - sum(step[i, l] * dp[i, l] for l in range(lat))
        for l in range(lat):
            loop[i, l] += step[i, l] / np.dot(step[i], step[i]) * miss
    assert np.allclose(out, loop)
    assert np.allclose(np.einsum("blm,bl->bm", out, step), change)   # the secant condition
    linear = np.einsum("blm,bl->bm", dp, step)                         # a linear map's own change along the step
    assert np.allclose(broyden_update(torch.as_tensor(dp), torch.as_tensor(step), torch.as_tensor(linear)).numpy(), dp)
    assert np.allclose(broyden_update(torch.as_tensor(dp), torch.zeros(b, lat, dtype=torch.float64),
                                      torch.zeros(b, n * 3, dtype=torch.float64)).numpy(), dp)
