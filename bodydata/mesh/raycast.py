"""First-hit ray casting against a triangle mesh: rays binned per shared origin, exact Möller–Trumbore, vectorised.

Rays that share an origin (a camera) are cast together. Their directions are split by cube-map face (the
dominant axis and its sign), and on each face the rays and the triangles are projected through the origin
(``(x_b / x_a, x_c / x_a)``, a perspective map: a triangle in front of the origin stays a triangle). A ray can
only hit a triangle whose projected bounding box holds the ray's projection, so rays are binned on a 2D grid
and each triangle is paired with the rays of the bins its box covers; a triangle that reaches behind the origin
covers every bin (conservative). Each candidate pair gets the exact double-precision Möller–Trumbore test, and
the nearest hit of each ray is kept (ties go to the lower face id). Rays with distinct origins are correct too,
one group per origin, but then each ray costs a pass over the triangles.

The optional ``open3d`` backend (``open3d.t.geometry.RaycastingScene``, an extra: ``pip install bodydata[open3d]``)
casts in float32; its hits are recomputed here in float64 on the face it found, so both backends return the
same numbers up to open3d's choice between faces at a shared edge.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodydata.errors import BodydataError

__all__ = ["BACKENDS", "RayHits", "open3d_available", "raycast"]

BACKENDS = ("numpy", "open3d")
# Barycentric slack so that a ray through a shared edge is not lost between its two triangles by rounding.
_EDGE_EPS = 1e-10
# Candidate (ray, triangle) pairs tested at once: bounds the memory of one step (~40 bytes x 8 arrays a pair).
_PAIRS_PER_STEP = 2_000_000


@dataclass
class RayHits:
    """The first hit of each of r rays.

    hit : (r,) bool
    distance : (r,) float64, the ray parameter t of the hit (point = origin + t * direction; metres for unit
        directions), inf on a miss
    face : (r,) int64, the hit triangle, -1 on a miss
    barycentric : (r, 3) float64, weights of the face's corners (sum 1), NaN on a miss
    points : (r, 3) float64, origin + t * direction, NaN on a miss
    """

    hit: np.ndarray
    distance: np.ndarray
    face: np.ndarray
    barycentric: np.ndarray
    points: np.ndarray


def open3d_available() -> bool:
    """True when ``import open3d`` works (it is an optional extra; on Debian it also needs libusb-1.0-0)."""
    try:
        import open3d  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def raycast(vertices: np.ndarray, faces: np.ndarray, origins: np.ndarray, directions: np.ndarray,
            t_min: float = 0.0, backend: str = "numpy") -> RayHits:
    """First hit of each ray on the mesh (both sides of a triangle count).

    vertices : (n, 3) float64; faces : (m, 3) int64; origins : (r, 3) or (3,) float64 (one origin for all rays);
    directions : (r, 3) float64, non-zero (need not be unit: distances are in multiples of their length);
    t_min : hits with t <= t_min are ignored; backend : ``"numpy"`` (always available) or ``"open3d"``.
    """
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    d = np.asarray(directions, np.float64).reshape(-1, 3)
    o = np.broadcast_to(np.asarray(origins, np.float64), d.shape)
    if backend not in BACKENDS:
        raise BodydataError(f"raycast: unknown backend {backend!r} (expected one of {', '.join(BACKENDS)})")
    if not np.isfinite(d).all() or not np.isfinite(o).all() or (np.abs(d).max(1, initial=0) == 0).any():
        raise BodydataError("raycast: ray origins and directions must be finite and directions non-zero")
    n = len(d)
    t = np.full(n, np.inf)
    face = np.full(n, -1, np.int64)
    if n and len(f):
        if backend == "open3d":
            # open3d has no t_min: start the rays at t_min instead
            face = _open3d_faces(v, f, o + t_min * d, d)
            ok = face >= 0
            tt, _, _, good = _moller_trumbore(o[ok], d[ok], v[f[face[ok]]], slack=1e-4)
            ids = np.flatnonzero(ok)
            keep = good & (tt > t_min)
            face[ids[~keep]] = -1
            t[ids[keep]] = tt[keep]
        else:
            if (o == o[0]).all():                              # one camera: skip the costly row sort
                t, face = _cast_from(v, f, o[0], d, t_min)
            else:
                uniq, inverse = np.unique(o, axis=0, return_inverse=True)
                for g in range(len(uniq)):
                    rays = np.flatnonzero(inverse.reshape(-1) == g)
                    t[rays], face[rays] = _cast_from(v, f, uniq[g], d[rays], t_min)
    hit = face >= 0
    bary = np.full((n, 3), np.nan)
    pts = np.full((n, 3), np.nan)
    if hit.any():
        pts[hit] = o[hit] + t[hit, None] * d[hit]
        bary[hit] = _barycentric(pts[hit], v[f[face[hit]]])
    return RayHits(hit, t, face, bary, pts)


def _barycentric(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Barycentrics (k, 3) of points p (k, 3) in the planes of triangles tri (k, 3, 3), clipped to the triangle."""
    e1, e2, s = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], p - tri[:, 0]
    d11, d12, d22 = (e1 * e1).sum(1), (e1 * e2).sum(1), (e2 * e2).sum(1)
    s1, s2 = (s * e1).sum(1), (s * e2).sum(1)
    den = d11 * d22 - d12 * d12
    b1 = (d22 * s1 - d12 * s2) / den
    b2 = (d11 * s2 - d12 * s1) / den
    out = np.clip(np.stack([1.0 - b1 - b2, b1, b2], 1), 0.0, 1.0)
    return out / out.sum(1, keepdims=True)


def _moller_trumbore(o: np.ndarray, d: np.ndarray, tri: np.ndarray, slack: float = _EDGE_EPS):
    """Ray (o, d : (k, 3)) against triangle (tri : (k, 3, 3)) pairs -> t, u, v (k,) float64 and hit (k,) bool."""
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    p = np.cross(d, e2)
    det = (e1 * p).sum(1)
    scale = np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1) * np.linalg.norm(d, axis=1)
    ok = np.abs(det) > 1e-12 * scale
    inv = np.divide(1.0, det, out=np.zeros_like(det), where=ok)
    s = o - tri[:, 0]
    u = (s * p).sum(1) * inv
    q = np.cross(s, e1)
    w = (d * q).sum(1) * inv
    t = (e2 * q).sum(1) * inv
    hit = ok & (u >= -slack) & (w >= -slack) & (u + w <= 1.0 + slack)
    return t, u, w, hit


def _cast_from(v: np.ndarray, f: np.ndarray, origin: np.ndarray, d: np.ndarray, t_min: float):
    """Nearest hit of rays d (k, 3) from one origin (3,) -> t (k,) (inf on a miss), face (k,) (-1)."""
    k = len(d)
    t = np.full(k, np.inf)
    face = np.full(k, -1, np.int64)
    rel = v - origin
    tri = v[f]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    s = origin - tri[:, 0]
    q = np.cross(s, e1)                                     # per triangle: the origin is shared
    edge_scale = np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1)
    axis = np.abs(d).argmax(1)
    sign = np.where(d[np.arange(k), axis] > 0, 1.0, -1.0)
    for a in range(3):
        for sg in (1.0, -1.0):
            rays = np.flatnonzero((axis == a) & (sign == sg))
            if len(rays) == 0:
                continue
            b, c = [x for x in range(3) if x != a]
            dr = d[rays]
            ru, rw = dr[:, b] / (sg * dr[:, a]), dr[:, c] / (sg * dr[:, a])
            depth = sg * rel[:, a][f]                           # (m, 3)
            cand = np.flatnonzero((depth > 0).any(1))           # a triangle wholly behind the origin is never hit
            if len(cand) == 0:
                continue
            lo_u, hi_u, lo_w, hi_w = ru.min(), ru.max(), rw.min(), rw.max()
            front = (depth[cand] > 0).all(1)
            with np.errstate(divide="ignore", invalid="ignore"):
                pu = rel[:, b][f[cand]] / depth[cand]
                pw = rel[:, c][f[cand]] / depth[cand]
            tu0 = np.where(front, pu.min(1), lo_u)
            tu1 = np.where(front, pu.max(1), hi_u)
            tw0 = np.where(front, pw.min(1), lo_w)
            tw1 = np.where(front, pw.max(1), hi_w)
            inside = (tu1 >= lo_u) & (tu0 <= hi_u) & (tw1 >= lo_w) & (tw0 <= hi_w)
            cand, tu0, tu1, tw0, tw1 = cand[inside], tu0[inside], tu1[inside], tw0[inside], tw1[inside]
            # about one ray per bin: fewer bins pair small triangles with many rays, more bins expand big ones
            nb = int(np.clip(np.sqrt(len(rays)), 1, 1024))
            su = nb / max(hi_u - lo_u, 1e-12)
            sw = nb / max(hi_w - lo_w, 1e-12)
            bu = np.minimum(((ru - lo_u) * su).astype(np.int64), nb - 1)
            bw = np.minimum(((rw - lo_w) * sw).astype(np.int64), nb - 1)
            iu0 = np.clip(np.floor((tu0 - lo_u) * su), 0, nb - 1).astype(np.int64)
            iu1 = np.clip(np.floor((tu1 - lo_u) * su), 0, nb - 1).astype(np.int64)
            iw0 = np.clip(np.floor((tw0 - lo_w) * sw), 0, nb - 1).astype(np.int64)
            iw1 = np.clip(np.floor((tw1 - lo_w) * sw), 0, nb - 1).astype(np.int64)
            binid = bu * nb + bw
            order = np.argsort(binid, kind="stable")
            counts = np.bincount(binid, minlength=nb * nb).reshape(nb, nb)
            start = np.r_[0, np.cumsum(counts.reshape(-1))]
            # summed-area table: rays inside each triangle's bin box, to size the steps
            sat = np.zeros((nb + 1, nb + 1), np.int64)
            sat[1:, 1:] = counts.cumsum(0).cumsum(1)
            per_tri = sat[iu1 + 1, iw1 + 1] - sat[iu0, iw1 + 1] - sat[iu1 + 1, iw0] + sat[iu0, iw0]
            keep = per_tri > 0
            cand, iu0, iu1, iw0, iw1, per_tri = (x[keep] for x in (cand, iu0, iu1, iw0, iw1, per_tri))
            step_of = np.cumsum(per_tri) // _PAIRS_PER_STEP
            best = ([np.empty(0, np.int64)], [np.empty(0)], [np.empty(0, np.int64)])
            for st in np.unique(step_of):
                sel = step_of == st
                pr, pf = _pairs(cand[sel], iu0[sel], iu1[sel], iw0[sel], iw1[sel], nb, start, order)
                ray_d = dr[pr]
                p = np.cross(ray_d, e2[pf])
                det = (e1[pf] * p).sum(1)
                ok = np.abs(det) > 1e-12 * edge_scale[pf] * np.linalg.norm(ray_d, axis=1)
                inv = np.divide(1.0, det, out=np.zeros_like(det), where=ok)
                u = (s[pf] * p).sum(1) * inv
                w = (ray_d * q[pf]).sum(1) * inv
                tt = (e2[pf] * q[pf]).sum(1) * inv
                good = ok & (u >= -_EDGE_EPS) & (w >= -_EDGE_EPS) & (u + w <= 1 + _EDGE_EPS) & (tt > t_min)
                best[0].append(pr[good])
                best[1].append(tt[good])
                best[2].append(pf[good])
            hr, ht, hf = (np.concatenate(x) for x in best)
            if len(hr):
                first = np.lexsort((hf, ht, hr))
                hr, ht, hf = hr[first], ht[first], hf[first]
                lead = np.r_[True, hr[1:] != hr[:-1]]
                t[rays[hr[lead]]] = ht[lead]
                face[rays[hr[lead]]] = hf[lead]
    return t, face


def _pairs(tris: np.ndarray, iu0, iu1, iw0, iw1, nb: int, start: np.ndarray, order: np.ndarray):
    """Candidate (ray, triangle) pairs: every ray in every bin of each triangle's bin box -> (ray (p,), face (p,))."""
    wu, ww = iu1 - iu0 + 1, iw1 - iw0 + 1
    nbins = wu * ww
    tb = np.repeat(np.arange(len(tris)), nbins)
    local = np.arange(len(tb)) - np.repeat(np.cumsum(nbins) - nbins, nbins)
    bins = (iu0[tb] + local // ww[tb]) * nb + iw0[tb] + local % ww[tb]
    cnt = start[bins + 1] - start[bins]
    pb = np.repeat(np.arange(len(bins)), cnt)
    within = np.arange(len(pb)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    return order[start[bins][pb] + within], tris[tb[pb]]


def _open3d_faces(v: np.ndarray, f: np.ndarray, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The face open3d's RaycastingScene hits first for each ray, -1 on a miss -> (r,) int64."""
    if not open3d_available():
        raise BodydataError("raycast: backend 'open3d' needs the optional extra (pip install 'bodydata[open3d]'; "
                            "on Debian also apt install libusb-1.0-0)")
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(f.astype(np.uint32)))
    rays = o3d.core.Tensor(np.hstack([o, d]).astype(np.float32))
    ans = scene.cast_rays(rays, nthreads=1)
    prim = ans["primitive_ids"].numpy().astype(np.int64)
    miss = ~np.isfinite(ans["t_hit"].numpy()) | (prim >= len(f)) | (prim < 0)
    prim[miss] = -1
    return prim
