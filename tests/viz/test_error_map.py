"""The back view of an error map: a half turn about the up axis, checked against its closed form."""
from __future__ import annotations

import numpy as np

from bodydata.viz.error_map import half_turn


def test_half_turn_is_a_rotation_by_pi_about_up():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(20, 3))
    c = np.array([0.5, -1.0, 2.0])
    turned = half_turn(v, (0.0, 0.0, 2.0), c)
    # about z through c: x and y mirrored through c, z kept
    assert np.allclose(turned[:, :2], 2 * c[:2] - v[:, :2]) and np.allclose(turned[:, 2], v[:, 2])
    assert np.allclose(half_turn(turned, (0.0, 0.0, 1.0), c), v)  # twice is the identity
    assert np.allclose(np.linalg.norm(turned - c, axis=1), np.linalg.norm(v - c, axis=1))
