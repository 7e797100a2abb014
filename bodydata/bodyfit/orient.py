"""Where a body is before any fit: its length unit from its size, and the orientations worth trying.

A scan's units and axes are not known: FAUST is metres and y-up, many scanners write millimetres, FAUST_r and
SCAPE_r rescale every shape, a body may lie down or stand on its head. An adult body is 1.0-2.1 m along its
longest principal axis (crouching to standing with raised arms), so that extent tells the unit when it falls
in one unit's range; otherwise, or when the caller knows the coordinates were rescaled to no physical unit (a source
row whose ``units`` say so: FAUST_r's shapes span 1.0-1.2, which would read as a short body in metres), the unit is
``"normalized"`` and the fit's free scale absorbs it.

Orientation hypotheses: each of the six signed principal axes may be "up", and for each the body may face
any of ``azimuths`` directions evenly spaced about it, starting at a remaining principal axis (4: the four signed
remaining axes, 24 proper rotations from anny's frame (z up, facing -y) into the target's). A T-pose's arm span
equals its height and a lying body's longest axis is horizontal, so no up axis is ruled out beforehand; the fit
scores them all.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodydata.manifest.source_rows import UNITS_NORMALIZED

__all__ = ["UNITS", "Placement", "detect_units", "orientation_hypotheses", "principal_axes"]

#: unit name -> (metres per unit, longest-extent range of an adult body in that unit)
UNITS: dict[str, tuple[float, tuple[float, float]]] = {
    "m": (1.0, (0.9, 2.6)),
    "cm": (0.01, (90.0, 260.0)),
    "mm": (0.001, (900.0, 2600.0)),
}
#: metres an anny body of average phenotype spans along its longest axis at its reference A-pose
TYPICAL_EXTENT_M = 1.70


@dataclass(frozen=True)
class Placement:
    """units : ``"m" | "cm" | "mm" | "normalized"``; to_metres : factor taking target lengths to (about) metres;
    centre : (3,) float64 target-unit centroid; axes : (3, 3) float64 principal axes as rows, longest first;
    extents : (3,) float64 target-unit ranges along them."""

    units: str
    to_metres: float
    centre: np.ndarray
    axes: np.ndarray
    extents: np.ndarray


def principal_axes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """points : (m, 3) float64 -> centre (3,), axes (3, 3) rows (longest spread first, right-handed), extents (3,)."""
    centre = points.mean(0)
    c = points - centre
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    if np.linalg.det(vt) < 0:
        vt[2] = -vt[2]
    proj = c @ vt.T
    return centre, vt, proj.max(0) - proj.min(0)


def detect_units(points: np.ndarray, normalised: bool = False) -> Placement:
    """The unit of a body's coordinates from its longest principal extent; ``normalised``: the caller knows they
    have no physical unit, so the unit is ``"normalized"`` whatever the extent (module docstring)."""
    pts = np.asarray(points, np.float64)
    centre, axes, extents = principal_axes(pts)
    longest = float(extents[0])
    for name, (factor, (lo, hi)) in UNITS.items():
        if lo <= longest <= hi and not normalised:
            return Placement(name, factor, centre, axes, extents)
    return Placement(UNITS_NORMALIZED, TYPICAL_EXTENT_M / max(longest, 1e-12), centre, axes, extents)


def orientation_hypotheses(axes: np.ndarray, azimuths: int = 4) -> np.ndarray:
    """(6 * azimuths, 3, 3) float64 proper rotations R taking anny's frame (z up, facing -y) into the target's, built
    from the target's principal axes (3, 3) rows: R e_z = up, R (-e_y) = facing, for every signed up axis and
    ``azimuths`` (even) facings evenly spaced about it, the first along the next principal axis (4: the signed
    principal axes). Hypotheses 2k and 2k + 1 share the up axis and face opposite ways.

    More than 4 azimuths matter when the horizontal principal axes say little about the facing (a knee raised, arms
    forward, a twist: the body's facing is then anywhere between them, and a rigid start 45 degrees off settles in
    the wrong one)."""
    if azimuths < 2 or azimuths % 2:
        raise ValueError(f"azimuths must be an even number >= 2, got {azimuths}")
    out = []
    for i in range(3):
        for su in (1.0, -1.0):
            up = su * axes[i]
            base = axes[(i + 1) % 3]
            side = np.cross(up, base)
            for m in range(azimuths // 2):
                phi = 2.0 * np.pi * m / azimuths
                ahead = np.cos(phi) * base + np.sin(phi) * side
                for sf in (1.0, -1.0):
                    facing = sf * ahead
                    ry = -facing
                    rx = np.cross(ry, up)
                    out.append(np.stack([rx, ry, up], axis=1))
    return np.stack(out)
