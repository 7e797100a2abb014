"""Units from a body's size and the orientation hypotheses (24 at 4 azimuths, more azimuths evenly spaced)."""
import numpy as np
import pytest

from bodydata.bodyfit.orient import detect_units, orientation_hypotheses


def _box(height, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.5, 0.5, (2000, 3)) * np.array([0.45, 0.25, 1.0]) * height


@pytest.mark.parametrize("height,factor,units", [(1.75, 1.0, "m"), (1750.0, 1e-3, "mm"), (175.0, 0.01, "cm")])
def test_units_from_size(height, factor, units):
    pl = detect_units(_box(height))
    assert pl.units == units and pl.to_metres == factor
    np.testing.assert_allclose(pl.axes[0] @ [0, 0, 1], 1.0, atol=0.05) if pl.axes[0][2] > 0 else None


def test_a_caller_who_knows_the_units_are_normalised_overrides_the_size():
    pts = _box(1.1)  # reads as a short body in metres
    assert detect_units(pts).units == "m"
    pl = detect_units(pts, normalised=True)
    assert pl.units == "normalized" and abs(pl.extents[0] * pl.to_metres - 1.70) < 1e-9


def test_normalised_units_rescale_to_typical_height():
    pl = detect_units(_box(0.2))
    assert pl.units == "normalized"
    assert abs(pl.extents[0] * pl.to_metres - 1.70) < 1e-9


def test_orientation_hypotheses_are_24_distinct_rotations_with_the_given_up_and_facing():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    axes = q.T * np.sign(np.linalg.det(q.T))
    rots = orientation_hypotheses(axes)
    assert rots.shape == (24, 3, 3)
    np.testing.assert_allclose(np.linalg.det(rots), 1.0, atol=1e-12)
    np.testing.assert_allclose(rots @ rots.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (24, 3, 3)), atol=1e-12)
    ups = rots[:, :, 2]
    facings = -rots[:, :, 1]
    pairs = {(tuple(np.round(u, 9)), tuple(np.round(f, 9))) for u, f in zip(ups, facings)}
    assert len(pairs) == 24
    signed = [s * a for a in axes for s in (1, -1)]
    for u, f in zip(ups, facings):
        assert any(np.allclose(u, a) for a in signed) and any(np.allclose(f, a) for a in signed)
        assert abs(u @ f) < 1e-12


def test_more_azimuths_turn_the_facing_evenly_about_each_up_axis():
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    axes = q.T * np.sign(np.linalg.det(q.T))
    rots = orientation_hypotheses(axes, azimuths=8)
    assert rots.shape == (48, 3, 3)
    np.testing.assert_allclose(np.linalg.det(rots), 1.0, atol=1e-12)
    np.testing.assert_allclose(rots @ rots.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (48, 3, 3)), atol=1e-12)
    ups, facings = rots[:, :, 2], -rots[:, :, 1]
    # twins: hypotheses 2k and 2k + 1 share the up axis and face opposite ways
    np.testing.assert_allclose(ups[0::2], ups[1::2], atol=1e-12)
    np.testing.assert_allclose(facings[0::2], -facings[1::2], atol=1e-12)
    for up in (s * a for a in axes for s in (1, -1)):
        mine = facings[np.all(np.isclose(ups, up), axis=1)]
        assert len(mine) == 8
        # the 8 facings about one up axis are 45 degrees apart, and the principal axes are among them
        angles = np.degrees(np.arctan2(np.cross(mine[0], mine) @ up, mine @ mine[0]))
        np.testing.assert_allclose(np.sort(np.mod(np.round(angles, 9), 360.0)), np.arange(0, 360, 45), atol=1e-9)
        others = [s * a for a in axes if abs(a @ up) < 0.5 for s in (1, -1)]
        assert all(any(np.allclose(f, o) for f in mine) for o in others)


def test_odd_azimuth_counts_are_refused():
    for bad in (0, 3, 7):
        with pytest.raises(ValueError, match="even number"):
            orientation_hypotheses(np.eye(3), azimuths=bad)
