"""Combinatorial mesh topology: edges, one rings, adjacency, boundaries, manifoldness, components.

Everything here depends only on ``faces : (m, 3) int`` (0-based vertex indices) and, where
isolated vertices matter, on the vertex count ``n_vertices``. All index outputs are int64.
"""
from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components as _cc

from bodydata.errors import MeshError

__all__ = [
    "edges",
    "one_ring",
    "adjacency_matrix",
    "boundary_edges",
    "is_edge_manifold",
    "is_vertex_manifold",
    "is_watertight",
    "connected_components",
    "check_manifold",
    "edge_face_counts",
]


def _as_faces(faces: np.ndarray) -> np.ndarray:
    faces = np.asarray(faces)
    if faces.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise MeshError(None, f"faces have shape {faces.shape}, expected (m, 3) triangles")
    if not np.issubdtype(faces.dtype, np.integer):
        raise MeshError(None, f"face indices have non-integer dtype {faces.dtype}")
    if int(faces.min()) < 0:
        raise MeshError(None, f"negative face index {int(faces.min())}")
    return faces.astype(np.int64, copy=False)


def _half_edges(faces: np.ndarray) -> np.ndarray:
    """(3m, 2) int64 directed edges (v0, v1), (v1, v2), (v2, v0) of every face, face-major."""
    return np.stack([faces, np.roll(faces, -1, axis=1)], axis=2).reshape(-1, 2)


def edge_face_counts(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected edges and how many faces use each.

    Returns ``(edges (e, 2) int64 with i < j sorted lexicographically, counts (e,) int64)``.
    An edge used twice by the same face (a degenerate face) counts twice.
    """
    faces = _as_faces(faces)
    if len(faces) == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    he = np.sort(_half_edges(faces), axis=1)
    # Encode (i, j) as one int64 so np.unique works on a 1-D array (much faster than axis=0).
    n = int(faces.max()) + 1
    keys = he[:, 0] * n + he[:, 1]
    uniq, counts = np.unique(keys, return_counts=True)
    out = np.stack([uniq // n, uniq % n], axis=1)
    return out.astype(np.int64, copy=False), counts.astype(np.int64, copy=False)


def edges(faces: np.ndarray) -> np.ndarray:
    """Unique undirected edges of a triangle mesh.

    faces : (m, 3) int
    Returns (e, 2) int64, each row (i, j) with i < j, rows sorted lexicographically.
    """
    return edge_face_counts(faces)[0]


def adjacency_matrix(faces: np.ndarray, n_vertices: int) -> sp.csr_matrix:
    """Vertex adjacency as a symmetric 0/1 ``scipy.sparse.csr_matrix`` of shape (n, n), dtype float64.

    A[i, j] = 1 iff (i, j) is an edge; the diagonal is 0. Indices in each row are sorted.
    Isolated vertices have empty rows.
    """
    e = edges(faces)
    if len(e) and (int(e.min()) < 0 or int(e.max()) >= n_vertices):
        raise MeshError(None, f"face indices outside [0, {n_vertices})")
    rows = np.concatenate([e[:, 0], e[:, 1]])
    cols = np.concatenate([e[:, 1], e[:, 0]])
    a = sp.csr_matrix((np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(n_vertices, n_vertices))
    a.sort_indices()
    return a


def one_ring(faces: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour lists in CSR form.

    Returns ``indptr (n+1,) int64`` and ``indices (nnz,) int64``: the neighbours of vertex ``i`` are
    ``indices[indptr[i]:indptr[i+1]]``, sorted ascending (not in fan order). nnz = 2 * #edges.
    """
    a = adjacency_matrix(faces, n_vertices)
    return a.indptr.astype(np.int64), a.indices.astype(np.int64)


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """Edges used by exactly one face.

    Returns (b, 2) int64 with i < j, sorted lexicographically (like :func:`edges`; the face's
    orientation is not kept). Empty (0, 2) for a closed mesh.
    """
    e, c = edge_face_counts(faces)
    return e[c == 1]


def is_edge_manifold(faces: np.ndarray) -> bool:
    """True iff no edge is used by more than two faces."""
    _, c = edge_face_counts(faces)
    return bool(np.all(c <= 2))


def is_watertight(faces: np.ndarray) -> bool:
    """True iff every edge is used by exactly two faces (closed, edge-manifold). False for no faces."""
    _, c = edge_face_counts(faces)
    return bool(len(c) > 0 and np.all(c == 2))


def _fan_counts(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """(n,) int64: the number of edge-connected fans of faces around each vertex (0 if isolated).

    Two faces around vertex v belong to the same fan when they share an edge (v, u). A vertex of
    a manifold mesh has exactly one fan (a disk or a half-disk); a bow-tie vertex has two or more.
    """
    faces = _as_faces(faces)
    m = len(faces)
    counts = np.zeros(n_vertices, dtype=np.int64)
    if m == 0:
        return counts
    if int(faces.min()) < 0 or int(faces.max()) >= n_vertices:
        raise MeshError(None, f"face indices outside [0, {n_vertices})")
    corner_v = faces.reshape(-1)                         # corner c = 3 f + k sits at vertex faces[f, k]
    nxt = np.roll(faces, -1, axis=1).reshape(-1)         # the other two corners of the face
    prv = np.roll(faces, 1, axis=1).reshape(-1)
    corner = np.arange(3 * m, dtype=np.int64)
    # Spokes (v, u) leaving each corner: two per corner.
    spoke_v = np.concatenate([corner_v, corner_v])
    spoke_u = np.concatenate([nxt, prv])
    spoke_c = np.concatenate([corner, corner])
    key = spoke_v * n_vertices + spoke_u
    order = np.argsort(key, kind="stable")
    key_s, c_s = key[order], spoke_c[order]
    # Link consecutive corners that share the same spoke: they are adjacent in the fan.
    same = key_s[1:] == key_s[:-1]
    a, b = c_s[:-1][same], c_s[1:][same]
    g = sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(3 * m, 3 * m))
    _, label = _cc(g, directed=False)
    pairs = np.unique(corner_v * (3 * m) + label)
    np.add.at(counts, pairs // (3 * m), 1)
    return counts


def is_vertex_manifold(faces: np.ndarray, n_vertices: int) -> bool:
    """True iff the faces around every vertex form a single edge-connected fan (no bow-ties).

    Isolated vertices (no faces) are allowed. Edge manifoldness is a separate check
    (:func:`is_edge_manifold`); a mesh is a 2-manifold (with boundary) when both hold.
    """
    return bool(np.all(_fan_counts(faces, n_vertices) <= 1))


def connected_components(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Connected-component label of each vertex, (n,) int64.

    Components are numbered 0, 1, ... in order of their lowest vertex index; an isolated vertex
    is a component of its own.
    """
    _, labels = _cc(adjacency_matrix(faces, n_vertices), directed=False)
    return labels.astype(np.int64)


def check_manifold(
    faces: np.ndarray,
    n_vertices: int,
    path: str | os.PathLike | None = None,
    require_watertight: bool = False,
) -> None:
    """Raise ``MeshError(path, reason)`` unless the mesh is an (optionally closed) 2-manifold.

    Checks, in order: edge manifoldness ("edge (3, 7) is shared by 3 faces (non-manifold)"),
    vertex manifoldness ("vertex 5 is a non-manifold fan (...)") and, with ``require_watertight``,
    the absence of boundary edges ("mesh has 12 boundary edges (not watertight)").
    """
    try:
        faces = _as_faces(faces)
    except MeshError as exc:
        raise MeshError(path, exc.reason) from None
    if len(faces) and int(faces.max()) >= n_vertices:
        raise MeshError(path, f"face index {int(faces.max())} out of range [0, {n_vertices})")
    e, c = edge_face_counts(faces)
    bad = np.flatnonzero(c > 2)
    if len(bad):
        i, j = (int(x) for x in e[bad[0]])
        more = f"; {len(bad)} such edges" if len(bad) > 1 else ""
        raise MeshError(path, f"edge ({i}, {j}) is shared by {int(c[bad[0]])} faces (non-manifold{more})")
    fans = _fan_counts(faces, n_vertices)
    badv = np.flatnonzero(fans > 1)
    if len(badv):
        v = int(badv[0])
        more = f"; {len(badv)} such vertices" if len(badv) > 1 else ""
        raise MeshError(path, f"vertex {v} is a non-manifold fan (its faces form {int(fans[v])} separate fans{more})")
    if require_watertight:
        nb = int(np.count_nonzero(c == 1))
        if nb:
            raise MeshError(path, f"mesh has {nb} boundary edges (not watertight)")
        if len(c) == 0:
            raise MeshError(path, "mesh has no faces (not watertight)")
