"""Jittered midpoint subdivision with an exact map: every new vertex is a (face, barycentric) point of the source mesh.

Used to make a body in a different connectivity whose correspondence to the source is known exactly (the
generator's ``subdiv`` topology, conversion benchmarks).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodydata.errors import MeshError
from bodydata.mesh.carry import place
from bodydata.mesh.normals import face_normals

__all__ = ["BarycentricRemesh", "jittered_subdivision"]


@dataclass
class BarycentricRemesh:
    """A connectivity whose vertices lie on the faces of a source topology (the map is exact).

    face_ids : (n,) int64 source face of each vertex; barycentrics : (n, 3) float64 weights of that
    face's corners (rows sum to 1); faces : (m, 3) int64 the new triangles; source : topology name.
    A body in the source topology, ``V (n_src, 3)``, is ``(barycentrics[..., None] * V[src_faces[face_ids]]).sum(1)``
    in this one.
    """

    face_ids: np.ndarray
    barycentrics: np.ndarray
    faces: np.ndarray
    source: str
    source_faces: np.ndarray

    def apply(self, vertices: np.ndarray) -> np.ndarray:
        """(..., n_src, 3) float64 source-topology vertices -> (..., n, 3) float64."""
        return place(self.face_ids, self.barycentrics, vertices, self.source_faces)


def jittered_subdivision(
    faces: np.ndarray, n_vertices: int, rng: np.random.Generator, source: str,
    corner_jitter: float = 0.15, edge_jitter: float = 0.15, reference_vertices: np.ndarray | None = None,
) -> BarycentricRemesh:
    """Midpoint subdivision of ``faces`` (every triangle into 4) with every vertex moved at random
    inside one of its incident source triangles, so no vertex coincides with a source vertex and the
    connectivity differs, while each vertex keeps an exact (face, barycentric) map to the source.

    Original vertex ``i`` keeps its index; the midpoint of unique edge ``e`` (sorted, as
    ``np.unique``) gets ``n_vertices + e``. Corner vertices move a barycentric distance up to
    ``corner_jitter`` into an incident face, midpoints up to ``edge_jitter`` towards the opposite corner
    and up to 0.1 along their edge. With ``reference_vertices`` ((n_vertices, 3) or (k, n_vertices, 3)
    float64, bodies in the source topology), vertices of small triangles whose normal turns by more than 60 degrees
    against the plain subdivision (tiny or strongly curved source triangles: fingers, ears) are put
    back at their exact corner or midpoint, repeatedly until none does.
    """
    faces = np.asarray(faces, dtype=np.int64)
    m = len(faces)
    corner_edges = np.stack([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], axis=1)  # (m, 3, 2)
    edges, inverse = np.unique(np.sort(corner_edges.reshape(-1, 2), axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(m, 3)
    mid = n_vertices + inverse  # (m, 3): midpoints of edges ab, bc, ca
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    mab, mbc, mca = mid[:, 0], mid[:, 1], mid[:, 2]
    new_faces = np.concatenate([
        np.stack([a, mab, mca], 1), np.stack([mab, b, mbc], 1),
        np.stack([mca, mbc, c], 1), np.stack([mab, mbc, mca], 1),
    ])
    # Corner vertices: a random incident face (corner slot k of face f).
    flat = faces.reshape(-1)
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=n_vertices)
    if np.any(counts == 0):
        raise MeshError(None, "subdivision: the source mesh has vertices without faces")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pick = order[starts + np.floor(rng.random(n_vertices) * counts).astype(np.int64)]
    v_face, v_slot = pick // 3, pick % 3
    s = rng.random(n_vertices) * corner_jitter
    w = 0.25 + 0.5 * rng.random(n_vertices)
    v_bary = np.empty((n_vertices, 3))
    v_bary[np.arange(n_vertices), v_slot] = 1.0 - s
    v_bary[np.arange(n_vertices), (v_slot + 1) % 3] = s * w
    v_bary[np.arange(n_vertices), (v_slot + 2) % 3] = s * (1.0 - w)
    # Midpoints: a random adjacent face of each edge (edge slot k of face f joins corners k, k+1).
    n_edges = len(edges)
    e_flat = inverse.reshape(-1)
    e_order = np.argsort(e_flat, kind="stable")
    e_counts = np.bincount(e_flat, minlength=n_edges)
    e_starts = np.concatenate([[0], np.cumsum(e_counts)[:-1]])
    e_pick = e_order[e_starts + np.floor(rng.random(n_edges) * e_counts).astype(np.int64)]
    e_face, e_slot = e_pick // 3, e_pick % 3
    t = rng.random(n_edges) * edge_jitter
    d = (rng.random(n_edges) - 0.5) * 0.2
    e_bary = np.empty((n_edges, 3))
    rows = np.arange(n_edges)
    e_bary[rows, e_slot] = (0.5 + d) * (1.0 - t)
    e_bary[rows, (e_slot + 1) % 3] = (0.5 - d) * (1.0 - t)
    e_bary[rows, (e_slot + 2) % 3] = t
    remesh = BarycentricRemesh(
        face_ids=np.concatenate([v_face, e_face]).astype(np.int64),
        barycentrics=np.concatenate([v_bary, e_bary]),
        faces=new_faces,
        source=source,
        source_faces=faces,
    )
    if reference_vertices is not None:
        exact = np.concatenate([
            np.eye(3)[v_slot],
            np.stack([(e_slot == 0) | (e_slot == 2), (e_slot == 0) | (e_slot == 1), (e_slot == 1) | (e_slot == 2)], 1)
            * 0.5,
        ])
        plain = BarycentricRemesh(remesh.face_ids, exact, new_faces, source, faces)
        refs = np.asarray(reference_vertices, dtype=np.float64).reshape(-1, n_vertices, 3)
        targets = [face_normals(plain.apply(r), new_faces) for r in refs]
        for _ in range(10):
            bad = np.zeros(len(new_faces), dtype=bool)
            for r, target in zip(refs, targets):
                normals = face_normals(remesh.apply(r), new_faces)
                bad |= np.einsum("ij,ij->i", normals, target) < 0.5
            if not bad.any():
                break
            verts = np.unique(new_faces[bad])
            remesh.barycentrics[verts] = exact[verts]
    return remesh
