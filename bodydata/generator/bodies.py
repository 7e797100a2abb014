"""Posed anny bodies with ground truth in several connectivities, for building priors and testing conversion."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["AnnyBodies", "anny_bodies"]


@dataclass
class AnnyBodies:
    """vertices : {topology: (B, n_t, 3) float64} (metres, z-up), the same B bodies in each topology;
    faces : {topology: (m_t, 3) int64}; names : B strings ``<identity>/<pose>_<j>``."""

    vertices: dict = field(default_factory=dict)
    faces: dict = field(default_factory=dict)
    names: list = field(default_factory=list)


def anny_bodies(topology: str, n_identities: int, n_poses: int, seed: int = 0, first_identity: int = 0,
                extra_topologies: tuple[str, ...] = (), device: str | None = None) -> AnnyBodies:
    """Sample ``n_identities x n_poses`` plausible posed anny bodies (bodydata.generator.synth), identities
    ``first_identity ..``; the same bodies are also produced in ``extra_topologies`` (e.g. ``"anny"``, the
    13,718-vertex default topology)."""
    from bodydata.generator.synth import AnnySynth

    synth = AnnySynth(topology=topology, extra_topologies=extra_topologies, check_intersections=False,
                      device=device or "cpu")
    out = AnnyBodies(faces={t: synth.faces[t] for t in (topology, *extra_topologies)})
    acc = {t: [] for t in (topology, *extra_topologies)}
    for i in range(first_identity, first_identity + n_identities):
        ident = synth.identity(seed, i, n_poses)
        for b in ident.bodies:
            acc[topology].append(b.vertices)
            for t in extra_topologies:
                acc[t].append(b.extra[t])
            out.names.append(f"{ident.identity}/{b.stem}")
    out.vertices = {t: np.stack(v) for t, v in acc.items()}
    return out


def transfer_landmarks(landmarks: dict[str, int], src_vertices: np.ndarray, dst_vertices: np.ndarray) -> dict[str, int]:
    """Landmarks of one body's vertex order -> the nearest vertices of the same body in another vertex order.

    src_vertices : (n, 3), dst_vertices : (m, 3) float64, the same surface in two connectivities."""
    from scipy.spatial import cKDTree

    names = list(landmarks)
    _, idx = cKDTree(np.asarray(dst_vertices)).query(np.asarray(src_vertices)[[landmarks[k] for k in names]])
    return {k: int(i) for k, i in zip(names, idx)}
