"""Point clouds: unit normals by PCA of k nearest neighbours (consistently oriented) and voxel down-sampling.

Orientation: towards the sensor that saw each point when it is known (a scan), else by propagation: signs
are handed along a minimum spanning tree of the k-nearest-neighbour graph whose edges weigh
``1 - |n_i . n_j|`` (Hoppe et al. 1992), so concave places (between the legs, inside a torus) are oriented
like their neighbours rather than by the centroid. The tree is cut at creases (neighbouring normals more than
60 degrees apart, e.g. a sole on the floor), where the relative sign means nothing, and each smooth piece is then
turned outward as a whole. Outward is the open side: a scanned surface was seen from outside, so from its points
a ray along the outward normal leaves the cloud while one along the inward normal meets the surface's far side
(a limb's other side); each piece takes the majority of these votes over its points. A piece with no majority
(a floor patch, a lone plane) is turned so that ``sum_i (p_i - c) . n_i > 0`` over its points, c the cloud's
centroid (for a closed surface three times the enclosed volume). A single point's "away from the centroid" is
no rule for a piece, and neither is the flux alone for a body standing on a floor: the floor, below the centroid
and facing up, outweighs the body.

With ``backend="open3d"`` (the optional extra) open3d computes the unoriented normals and the voxel means; the
orientation is always the rule above, and the voxel grid is the same (its origin half a voxel below the
cloud's minimum), so both backends give the same clouds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodydata.errors import BodydataError

__all__ = ["Downsampled", "estimate_normals", "orient_normals", "pca_normals", "voxel_downsample"]

_CHUNK = 50_000  # points per PCA step: bounds the (chunk, k, 3) neighbour array
_CREASE_COS = 0.5  # neighbours whose normals differ by more than 60 degrees hand no sign to each other


@dataclass
class Downsampled:
    """points : (k, 3) float64, the mean of each occupied voxel; normals : (k, 3) float64 unit mean normals or None;
    counts : (k,) int64 points per voxel; voxel_of : (n,) int64, the output row of each input point."""

    points: np.ndarray
    normals: np.ndarray | None
    counts: np.ndarray
    voxel_of: np.ndarray


def _check_points(points: np.ndarray, what: str) -> np.ndarray:
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or not np.isfinite(p).all():
        raise BodydataError(f"{what}: points must be a finite (n, 3) array, got shape {p.shape}")
    return p


def pca_normals(points: np.ndarray, k: int = 16, tree=None, backend: str = "numpy") -> np.ndarray:
    """Unoriented unit normals (n, 3) float64 of points (n, 3): the least-variance direction of each point's k nearest
    neighbours (itself included); the sign is arbitrary. ``tree`` : a ``scipy.spatial.cKDTree`` of the points when
    the caller has one."""
    return _pca(_check_points(points, "pca_normals"), k, tree, backend, "pca_normals")[0]


def estimate_normals(points: np.ndarray, k: int = 16, viewpoints: np.ndarray | None = None,
                     backend: str = "numpy") -> np.ndarray:
    """Unit normals (n, 3) float64 of points (n, 3): :func:`pca_normals`, oriented towards ``viewpoints`` ((n, 3) or
    (3,), e.g. the sensor of each scan point) when given, else by propagation (:func:`orient_normals`)."""
    p = _check_points(points, "estimate_normals")
    normals, nn = _pca(p, k, None, backend, "estimate_normals")
    return orient_normals(p, normals, viewpoints=viewpoints, neighbours=nn)


def _pca(p: np.ndarray, k: int, tree, backend: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(unoriented normals (n, 3), the k nearest neighbours (n, k) int64 they came from) of checked points p;
    ``what`` names the caller in errors."""
    if len(p) < 3:
        raise BodydataError(f"{what}: need at least 3 points, got {len(p)}")
    k = int(min(max(k, 3), len(p)))
    if tree is None:
        from scipy.spatial import cKDTree

        tree = cKDTree(p)
    _, nn = tree.query(p, k=k)
    if backend == "open3d":
        normals = _open3d_normals(p, k)
    elif backend == "numpy":
        normals = np.empty_like(p)
        for s in range(0, len(p), _CHUNK):
            nb = p[nn[s:s + _CHUNK]]
            nb = nb - nb.mean(1, keepdims=True)
            _, vecs = np.linalg.eigh(np.einsum("nki,nkj->nij", nb, nb))
            normals[s:s + _CHUNK] = vecs[:, :, 0]                # eigh sorts ascending: least variance first
    else:
        raise BodydataError(f"{what}: unknown backend {backend!r} (expected numpy or open3d)")
    return normals, nn


def orient_normals(points: np.ndarray, normals: np.ndarray, viewpoints: np.ndarray | None = None,
                   neighbours: np.ndarray | None = None, k: int = 16) -> np.ndarray:
    """Normals (n, 3) flipped to point towards ``viewpoints`` ((n, 3) or (3,)) or, without them, consistently
    outward by propagation along the k-nearest-neighbour graph (``neighbours`` : (n, k) int64 indices, computed
    when None)."""
    p = _check_points(points, "orient_normals")
    n = np.asarray(normals, np.float64).copy()
    if viewpoints is not None:
        flip = ((np.asarray(viewpoints, np.float64) - p) * n).sum(1) < 0
        n[flip] *= -1
        return n
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import (
        breadth_first_order,
        connected_components,
        minimum_spanning_tree,
    )

    if neighbours is None:
        from scipy.spatial import cKDTree

        _, neighbours = cKDTree(p).query(p, k=int(min(k, len(p))))
    m = len(p)
    i = np.repeat(np.arange(m), neighbours.shape[1])
    j = neighbours.reshape(-1)
    key = np.sort((np.minimum(i, j) * m + np.maximum(i, j))[i != j])     # one int per edge
    key = key[np.r_[True, key[1:] != key[:-1]]]      # sorted-run dedup: np.unique's hashing is slower here
    a, b = key // m, key % m
    # tiny floor: a zero weight would read as "no edge" in the sparse graph
    w = 1.0 - np.abs((n[a] * n[b]).sum(1)) + 1e-9
    graph = coo_matrix((w, (a, b)), shape=(m, m)).tocsr()
    # the tree is cut where it crosses a crease (sole to floor, finger to finger): the sign of n_i . n_j says
    # nothing there, so each smooth piece is oriented on its own
    tree = minimum_spanning_tree(graph).tocoo()
    smooth = tree.data <= 1.0 - _CREASE_COS + 1e-9
    forest = coo_matrix((np.ones(int(smooth.sum())), (tree.row[smooth], tree.col[smooth])), shape=(m, m)).tocsr()
    n_piece, label = connected_components(forest, directed=False)
    first = np.r_[True, np.sort(label)[1:] != np.sort(label)[:-1]]
    roots = np.argsort(label, kind="stable")[first]              # any point of each piece: the sign is fixed below
    # one tree per piece, all joined to a virtual node m
    ra = np.r_[tree.row[smooth], np.full(n_piece, m)]
    rb = np.r_[tree.col[smooth], roots]
    full = coo_matrix((np.ones(len(ra)), (ra, rb)), shape=(m + 1, m + 1)).tocsr()
    _, pred = breadth_first_order(full, m, directed=False, return_predecessors=True)
    pred[m] = m
    rel = np.ones(m + 1)
    nonroot = np.flatnonzero(pred[:m] != m)
    rel[nonroot] = np.where((n[nonroot] * n[pred[nonroot]]).sum(1) < 0, -1.0, 1.0)
    # pointer jumping: the product of the relative signs up to the virtual node, in log(depth) passes
    while (pred != m).any():
        rel = rel * rel[pred]
        pred = pred[pred]
    n *= rel[:m, None]
    vote = np.bincount(label, _open_side(p, n), n_piece)
    flux = np.bincount(label, ((p - p.mean(0)) * n).sum(1), n_piece)
    n[np.where(vote != 0, vote, flux)[label] < 0] *= -1
    return n


def _open_side(p: np.ndarray, n: np.ndarray, grid: int = 128, sample: int = 20_000) -> np.ndarray:
    """Per point (m,) float64: +1 when a ray along +n leaves the cloud's box without meeting another point's voxel
    while the ray along -n meets one, -1 for the reverse, 0 otherwise (both or neither; points not sampled).

    The cloud is a ``grid``-cubed occupancy grid; rays start two voxels out (past the point's own surface) and
    step half a voxel. A scanned surface was seen from outside, so its outward side is the open one: a point on
    a limb looks inward through the limb's far side, and outward into the room."""
    m = len(p)
    lo = p.min(0)
    size = max(float(np.ptp(p, axis=0).max()), 1e-12) / (grid - 1)
    occ = np.zeros((grid,) * 3, bool)
    idx = np.minimum(((p - lo) / size).astype(np.int64), grid - 1)
    occ[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    pick = np.random.default_rng(0).choice(m, min(m, sample), replace=False) if m > sample else np.arange(m)
    steps = 2.0 * size + 0.5 * size * np.arange(2 * grid)
    out = np.zeros(m)
    for s in range(0, len(pick), 1000):
        ids = pick[s:s + 1000]
        blocked = []
        for sign in (1.0, -1.0):
            ray = p[ids, None, :] + sign * steps[None, :, None] * n[ids, None, :]      # (b, steps, 3)
            cell = np.floor((ray - lo) / size).astype(np.int64)
            inside = ((cell >= 0) & (cell < grid)).all(2)
            cell = np.clip(cell, 0, grid - 1)
            blocked.append((occ[cell[..., 0], cell[..., 1], cell[..., 2]] & inside).any(1))
        out[ids] = blocked[1].astype(float) - blocked[0].astype(float)
    return out


def voxel_downsample(points: np.ndarray, voxel: float, normals: np.ndarray | None = None,
                     backend: str = "numpy") -> Downsampled:
    """One point per occupied cubic voxel of side ``voxel`` (the points' units): the mean of its points (and the
    renormalised mean of their normals). The grid starts half a voxel below the cloud's minimum corner.
    Rows are ordered by voxel (x index, then y, then z)."""
    p = _check_points(points, "voxel_downsample")
    if not voxel > 0:
        raise BodydataError(f"voxel_downsample: voxel size must be > 0, got {voxel}")
    if len(p) == 0:
        return Downsampled(p.copy(), None if normals is None else np.zeros((0, 3)), np.zeros(0, np.int64),
                           np.zeros(0, np.int64))
    cell = np.floor((p - (p.min(0) - 0.5 * voxel)) / voxel).astype(np.int64)
    dims = cell.max(0) + 1
    if float(np.prod(dims.astype(float))) < 2.0 ** 62:       # one int per voxel, in (x, y, z) order: a 1-D sort
        _, voxel_of, counts = np.unique((cell[:, 0] * dims[1] + cell[:, 1]) * dims[2] + cell[:, 2],
                                        return_inverse=True, return_counts=True)
    else:
        _, voxel_of, counts = np.unique(cell, axis=0, return_inverse=True, return_counts=True)
    voxel_of = voxel_of.reshape(-1)
    if backend == "open3d":
        return _open3d_downsample(p, voxel, normals, voxel_of, counts)
    if backend != "numpy":
        raise BodydataError(f"voxel_downsample: unknown backend {backend!r} (expected numpy or open3d)")
    mean = np.stack([np.bincount(voxel_of, p[:, d], len(counts)) for d in range(3)], 1) / counts[:, None]
    out_n = None
    if normals is not None:
        s = np.stack([np.bincount(voxel_of, np.asarray(normals, np.float64)[:, d], len(counts)) for d in range(3)], 1)
        out_n = s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-300)
    return Downsampled(mean, out_n, counts, voxel_of)


def _open3d_cloud(p: np.ndarray, normals: np.ndarray | None = None):
    from bodydata.mesh.raycast import open3d_available

    if not open3d_available():
        raise BodydataError("backend 'open3d' needs the optional extra (pip install 'bodydata[open3d]'; "
                            "on Debian also apt install libusb-1.0-0)")
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p))
    if normals is not None:
        cloud.normals = o3d.utility.Vector3dVector(np.asarray(normals, np.float64))
    return cloud


def _open3d_normals(p: np.ndarray, k: int) -> np.ndarray:
    import open3d as o3d

    cloud = _open3d_cloud(p)
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=k))
    return np.asarray(cloud.normals, np.float64)


def _open3d_downsample(p, voxel, normals, voxel_of, counts) -> Downsampled:
    """open3d's voxel means, put in this module's row order (by matching each mean to its voxel)."""
    ds = _open3d_cloud(p, normals).voxel_down_sample(voxel)
    pts = np.asarray(ds.points, np.float64)
    cell = np.floor((pts - (p.min(0) - 0.5 * voxel)) / voxel).astype(np.int64)
    ref = np.floor((p - (p.min(0) - 0.5 * voxel)) / voxel).astype(np.int64)
    _, first = np.unique(voxel_of, return_index=True)
    keys = {tuple(c): r for r, c in enumerate(ref[first])}
    rows = np.array([keys[tuple(c)] for c in cell], np.int64)
    order = np.empty(len(rows), np.int64)
    order[rows] = np.arange(len(rows))
    out_n = None
    if normals is not None:
        nn = np.asarray(ds.normals, np.float64)[order]
        out_n = nn / np.maximum(np.linalg.norm(nn, axis=1, keepdims=True), 1e-300)
    return Downsampled(pts[order], out_n, counts, voxel_of)
