"""A body remeshed into another connectivity with a known answer (jittered subdivision, shuffled order), for conversion benchmarks.

A body ``V (n, 3)`` in the template's own vertex order is turned into a target mesh of a different
connectivity: midpoint subdivision (every triangle into 4) with every vertex moved at random inside one of
its source triangles (:func:`bodydata.mesh.subdivision.jittered_subdivision`), then the vertex order is
shuffled so that no index carries over. The target lies exactly on ``V``'s surface, and ``V`` itself is the
ground truth of a conversion back to the template's connectivity: converted vertex ``i`` should land on
``V[i]`` (MED = mean ``|converted_i - V_i|``). Landmarks on the target are the target vertices nearest to
the body's landmark vertices (up to a few millimetres off: the jitter moves every vertex), like landmarks
marked by hand on the remeshed surface.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodydata.errors import BodydataError, MeshError
from bodydata.mesh.subdivision import jittered_subdivision

__all__ = ["RemeshedBody", "remesh_body"]


@dataclass
class RemeshedBody:
    """vertices : (m, 3) float64 the target mesh; faces : (k, 3) int64; landmarks : {name: target vertex id};
    face_ids : (m,) int64 and barycentrics : (m, 3) float64 the exact map of each target vertex onto the
    source body's faces ``source_faces (f, 3) int64`` (target vertex j = sum_c barycentrics[j, c] *
    V[source_faces[face_ids[j], c]]); landmark_offset : mean distance (units of V) between each
    target landmark and the body's landmark vertex it stands for."""

    vertices: np.ndarray
    faces: np.ndarray
    landmarks: dict
    face_ids: np.ndarray
    barycentrics: np.ndarray
    source_faces: np.ndarray
    landmark_offset: float


def remesh_body(vertices: np.ndarray, faces: np.ndarray, landmarks: dict[str, int], seed: int = 0,
                corner_jitter: float = 0.15, edge_jitter: float = 0.15, shuffle: bool = True) -> RemeshedBody:
    """Remesh one body into a jittered subdivision of its own faces, in a shuffled vertex order.

    vertices : (n, 3) float64; faces : (f, 3) int64 (every vertex used by a face); landmarks : {name:
    vertex id of ``vertices``}. The target has ``n + #edges`` vertices and ``4 f`` faces. Jitter sizes as
    in :func:`bodydata.mesh.subdivision.jittered_subdivision` (small or sharply curved triangles whose
    normal would flip by the jitter keep exact corners and midpoints). Deterministic for a seed.
    """
    from scipy.spatial import cKDTree


    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or f.size == 0:
        raise BodydataError(f"remesh: expected vertices (n, 3) and faces (f, 3), got {v.shape} and {f.shape}")
    if f.min() < 0 or f.max() >= len(v):
        raise BodydataError(f"remesh: face indices outside 0..{len(v) - 1}")
    bad = [k for k, i in landmarks.items() if not 0 <= int(i) < len(v)]
    if bad:
        raise BodydataError(f"remesh: landmarks {bad} are not vertices of the {len(v)}-vertex body")
    rng = np.random.default_rng(seed)
    try:
        rm = jittered_subdivision(f, len(v), rng, "body", corner_jitter, edge_jitter, reference_vertices=v)
    except MeshError as exc:
        raise BodydataError(f"remesh: {exc.reason}") from None
    tv, tf = rm.apply(v), rm.faces
    face_ids, bary = rm.face_ids, rm.barycentrics
    if shuffle:
        perm = rng.permutation(len(tv))            # new vertex j is old vertex perm[j]
        inv = np.argsort(perm)
        tv, tf, face_ids, bary = tv[perm], inv[tf], face_ids[perm], bary[perm]
    names = list(landmarks)
    if names:
        pts = v[[int(landmarks[k]) for k in names]]
        dist, idx = cKDTree(tv).query(pts)
        lm = {k: int(i) for k, i in zip(names, idx)}
        offset = float(dist.mean())
    else:
        lm, offset = {}, float("nan")
    return RemeshedBody(tv, tf.astype(np.int64), lm, face_ids.astype(np.int64), bary, f, offset)
