"""A virtual depth scanner: sensors around a mesh, per-pixel first hits, depth noise, grazing-angle holes, a floor.

The rig is ``n_views`` pinhole depth sensors (four, as the paper's capture rig) on a circle of radius ``distance``
around the body's vertical axis, at ``height`` of the body's height above its feet, looking horizontally at the
axis. One pixel grid per sensor (square pixels, the same angular pitch for all) covers the body and, with
``floor``, the floor patch around its feet (the footprint of the lowest tenth of the body grown by ``floor_margin`` on every
side, on the plane through the lowest vertex, normal to ``up_axis``); the pitch is chosen by a coarse pass so that the scan has about ``n_points``
points. Every pixel's ray is cast (:mod:`bodydata.mesh.raycast`) against the body and the floor together, so
the feet hide the floor and vice versa.

What a real sensor does to the hits:
- a hit whose surface is seen at more than ``max_incidence`` degrees from its normal is a hole (dropped);
- the measured depth z (along the sensor's optical axis) gets Gaussian noise of standard deviation
  ``noise_mm * (z / distance)^2`` (structured-light / time-of-flight sensors degrade with depth squared);
  the point moves along its pixel's ray, so its distance from the surface is that noise times the cosine of
  the incidence over the cosine of the ray's angle to the optical axis.

Everything is known: each point's sensor, the exact surface point it came from (face id + barycentrics on the
input mesh, ``-1`` / NaN for the floor) and its noise's standard deviation along the ray. Optionally a noisy
triangulation (each view's pixel grid, triangles across depth jumps dropped) and estimated normals. The scan is
deterministic given ``seed``; coordinates are the mesh's (metres: the noise is in millimetres).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodydata.errors import BodydataError
from bodydata.mesh.normals import face_normals
from bodydata.mesh.raycast import BACKENDS, raycast

__all__ = ["Scan", "ScannerConfig", "VirtualScanner", "up_vector", "virtual_scan"]

_AXES = {"+x": 0, "-x": 0, "+y": 1, "-y": 1, "+z": 2, "-z": 2}
_COARSE_RAYS = 15_000     # rays per view of the pass that sizes the pixel pitch
_MAX_TAN = 1.2            # the widest half field of view, as a tangent (50 degrees)


@dataclass(frozen=True)
class ScannerConfig:
    """The rig. Lengths in the mesh's units (metres); ``noise_mm`` in millimetres of depth at ``distance``.

    faces : ``"none"`` (a point cloud) or ``"noisy"`` (each view's pixel grid triangulated); normals : ``"none"``
    or ``"estimated"`` (PCA, towards the sensor: :func:`bodydata.mesh.pointcloud.estimate_normals`)."""

    n_points: int = 200_000
    n_views: int = 4
    distance: float = 2.0
    height: float = 0.55
    azimuth: float = 0.0
    noise_mm: float = 1.0
    max_incidence: float = 75.0
    floor: bool = True
    floor_margin: float = 0.05
    up_axis: str = "+z"
    faces: str = "none"
    normals: str = "none"
    backend: str = "numpy"
    seed: int = 0

    def check(self) -> None:
        """One-line :class:`BodydataError` for a value out of range."""
        bad = []
        if not 100 <= self.n_points <= 10_000_000:
            bad.append(f"n_points must be in 100..10,000,000, got {self.n_points}")
        if not 1 <= self.n_views <= 64:
            bad.append(f"n_views must be in 1..64, got {self.n_views}")
        if not self.distance > 0 or not self.floor_margin >= 0:
            bad.append("distance must be > 0 and floor_margin >= 0")
        if not 0 <= self.noise_mm < 1000 or not 0 < self.max_incidence <= 90:
            bad.append("noise_mm must be in [0, 1000) and max_incidence in (0, 90] degrees")
        if self.up_axis not in _AXES:
            bad.append(f"up_axis must be one of {', '.join(_AXES)}, got {self.up_axis!r}")
        if self.faces not in ("none", "noisy") or self.normals not in ("none", "estimated"):
            bad.append(f"faces must be none|noisy and normals none|estimated, got {self.faces!r}, {self.normals!r}")
        if self.backend not in BACKENDS:
            bad.append(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if bad:
            raise BodydataError("virtual scanner: " + "; ".join(bad))


@dataclass
class Scan:
    """A virtual scan of N points.

    points : (N, 3) float64, measured (noisy) points
    sensor : (N,) int64, which sensor saw each point; sensors : (S, 3) float64 their positions
    face : (N,) int64, the input mesh's face the point came from, -1 for the floor
    barycentric : (N, 3) float64, where on that face (NaN for the floor)
    surface : (N, 3) float64, the exact (noise-free) surface point
    noise_sigma : (N,) float64, the standard deviation of the point's noise along its ray
    normals : (N, 3) float64 or None (estimated, towards the sensor)
    faces : (M, 3) int64, the noisy triangulation, shape (0, 3) without one
    n_rays : rays cast; n_grazing : hits dropped as grazing-angle holes; up : (3,) float64 unit up vector
    """

    points: np.ndarray
    sensor: np.ndarray
    sensors: np.ndarray
    face: np.ndarray
    barycentric: np.ndarray
    surface: np.ndarray
    noise_sigma: np.ndarray
    normals: np.ndarray | None
    faces: np.ndarray
    n_rays: int
    n_grazing: int
    up: np.ndarray

    @property
    def hole_fraction(self) -> float:
        """Hits lost to grazing incidence, as a fraction of all hits."""
        return self.n_grazing / max(self.n_grazing + len(self.points), 1)

    @property
    def on_body(self) -> np.ndarray:
        """(N,) bool: the points on the body (not the floor)."""
        return self.face >= 0

    def nearest_points(self, surface_points: np.ndarray, max_dist: float) -> np.ndarray:
        """For each point of the scanned surface (k, 3) (e.g. a landmark vertex), the body scan point whose true
        surface point is nearest -> (k,) int64, -1 where none is within ``max_dist`` (the place fell in a hole)."""
        from scipy.spatial import cKDTree

        body = np.flatnonzero(self.on_body)
        if len(body) == 0:
            return np.full(len(surface_points), -1, np.int64)
        d, i = cKDTree(self.surface[body]).query(np.asarray(surface_points, np.float64).reshape(-1, 3))
        return np.where(d <= max_dist, body[np.minimum(i, len(body) - 1)], -1).astype(np.int64)


def up_vector(up_axis: str) -> np.ndarray:
    """``"+z"`` -> (0, 0, 1) float64, ``"-y"`` -> (0, -1, 0), ..."""
    if up_axis not in _AXES:
        raise BodydataError(f"up axis must be one of {', '.join(_AXES)}, got {up_axis!r}")
    u = np.zeros(3)
    u[_AXES[up_axis]] = -1.0 if up_axis[0] == "-" else 1.0
    return u


@dataclass
class _View:
    """One sensor: position (3,), optical axis z (3,), image axes x, y (3,)."""

    origin: np.ndarray
    z: np.ndarray
    x: np.ndarray
    y: np.ndarray


@dataclass
class _ViewHits:
    """One sensor's pixel grid, flattened (r = H * W pixels): keep (r,) bool (a kept hit); t (r,) measured ray
    parameter (NaN where not kept); d (r, 3) unit ray directions; face (r,) body face or -1; surface (r, 3) and
    bary (r, 3) the exact hit; sigma (r,) noise std along the ray; shape (H, W); pitch the pixel pitch (tangent
    units); n_grazing hits dropped at grazing incidence."""

    keep: np.ndarray
    t: np.ndarray
    d: np.ndarray
    face: np.ndarray
    surface: np.ndarray
    bary: np.ndarray
    sigma: np.ndarray
    shape: tuple[int, int]
    pitch: float
    n_grazing: int


class VirtualScanner:
    """Scans meshes with one rig (:class:`ScannerConfig`, checked here)."""

    def __init__(self, config: ScannerConfig | None = None):
        self.config = config or ScannerConfig()
        self.config.check()
        self.up = up_vector(self.config.up_axis)
        side = np.eye(3)[(_AXES[self.config.up_axis] + 1) % 3]
        self.a1 = np.cross(self.up, side)
        self.a2 = np.cross(self.up, self.a1)

    def scan(self, vertices: np.ndarray, faces: np.ndarray) -> Scan:
        """Scan one mesh: vertices (n, 3) float64, faces (m, 3) int64 (metres when ``noise_mm`` is meant as mm)."""
        cfg = self.config
        v = np.asarray(vertices, np.float64)
        f = np.asarray(faces, np.int64).reshape(-1, 3)
        if len(f) == 0 or len(v) < 3 or not np.isfinite(v).all():
            raise BodydataError("virtual scanner: the mesh needs faces and finite vertices")
        h = v @ self.up
        feet, top = h.min(), h.max()
        plane = v - np.outer(h, self.up)
        centre = 0.5 * (plane.min(0) + plane.max(0))
        scene_v, scene_f = v, f
        fn = face_normals(v, f)
        if cfg.floor:
            low = h <= feet + 0.1 * (top - feet)             # the feet and ankles, not outstretched arms
            c1, c2 = plane[low] @ self.a1, plane[low] @ self.a2
            m = cfg.floor_margin
            corners = [feet * self.up + x * self.a1 + y * self.a2 for x, y in (
                (c1.min() - m, c2.min() - m), (c1.max() + m, c2.min() - m), (c1.max() + m, c2.max() + m),
                (c1.min() - m, c2.max() + m))]
            scene_v = np.vstack([v, corners])
            scene_f = np.vstack([f, len(v) + np.array([[0, 1, 2], [0, 2, 3]])])
            fn = np.vstack([fn, [self.up, self.up]])
        views = []
        for k in range(cfg.n_views):
            phi = np.deg2rad(cfg.azimuth) + 2 * np.pi * k / cfg.n_views
            radial = np.cos(phi) * self.a1 + np.sin(phi) * self.a2
            origin = centre + cfg.distance * radial + (feet + cfg.height * (top - feet)) * self.up
            views.append(_View(origin, -radial, np.cross(self.up, -radial), self.up.copy()))
        windows = [self._window(view, v, scene_v[len(v):]) for view in views]
        area = sum((w[1] - w[0]) * (w[3] - w[2]) for w in windows)
        pitch = np.sqrt(area / (_COARSE_RAYS * cfg.n_views))
        coarse = sum(self._cast(view, win, pitch, scene_v, scene_f, fn, len(f), k, count_only=True)
                     for k, (view, win) in enumerate(zip(views, windows)))
        if coarse == 0:
            raise BodydataError("virtual scanner: no sensor sees the mesh")
        pitch *= np.sqrt(coarse / cfg.n_points)              # points scale with the pixel density
        parts = [self._cast(view, win, pitch, scene_v, scene_f, fn, len(f), k)
                 for k, (view, win) in enumerate(zip(views, windows))]
        return self._assemble(parts, views)

    def _window(self, view: _View, body: np.ndarray, floor: np.ndarray) -> tuple[float, float, float, float]:
        """The image window (x0, x1, y0, y1) in tangent units: the body's projection, padded, stretched down to
        the floor patch's near edge (not sideways: the floor is there to be seen under the feet), within the FOV."""
        def project(points):
            rel = points - view.origin
            depth = rel @ view.z
            front = depth > 1e-6
            return (rel[front] @ view.x) / depth[front], (rel[front] @ view.y) / depth[front]

        px, py = project(body)
        pad = 0.02 * max(np.ptp(px), np.ptp(py))
        bottom = py.min() - pad
        if len(floor):
            fy = project(floor)[1]
            bottom = min(bottom, fy.min()) if len(fy) else bottom
        return (max(px.min() - pad, -_MAX_TAN), min(px.max() + pad, _MAX_TAN),
                max(bottom, -_MAX_TAN), min(py.max() + pad, _MAX_TAN))

    def _cast(self, view: _View, win, pitch: float, scene_v, scene_f, fn, n_body_faces: int, k: int,
              count_only: bool = False) -> _ViewHits | int:
        """One sensor's pixel grid cast: the kept hits (or, with ``count_only``, how many there are)."""
        cfg = self.config
        xs = np.arange(win[0] + 0.5 * pitch, win[1], pitch)
        ys = np.arange(win[2] + 0.5 * pitch, win[3], pitch)
        gx, gy = np.meshgrid(xs, ys)                          # (H, W), row = image y
        d = view.z + gx.reshape(-1, 1) * view.x + gy.reshape(-1, 1) * view.y
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        hits = raycast(scene_v, scene_f, view.origin, d, backend=cfg.backend)
        cos_inc = np.zeros(len(d))
        cos_inc[hits.hit] = np.abs((fn[hits.face[hits.hit]] * d[hits.hit]).sum(1))
        keep = hits.hit & (cos_inc >= np.cos(np.deg2rad(cfg.max_incidence)) - 1e-12)
        if count_only:
            return int(keep.sum())
        rng = np.random.default_rng([cfg.seed, k])
        cos_axis = d @ view.z                                 # the ray's angle to the optical axis
        z = np.where(keep, hits.distance, 0.0) * cos_axis
        sigma_z = 1e-3 * cfg.noise_mm * (z / cfg.distance) ** 2
        sigma_ray = np.where(keep, sigma_z / cos_axis, 0.0)
        noise = rng.standard_normal(len(d)) * sigma_ray
        t = np.where(keep, hits.distance + noise, np.nan)
        return _ViewHits(keep, t, d, np.where(hits.face < n_body_faces, hits.face, -1), hits.points,
                         hits.barycentric, sigma_ray, gx.shape, pitch, int((hits.hit & ~keep).sum()))

    def _assemble(self, parts: list[_ViewHits], views: list[_View]) -> Scan:
        cfg = self.config
        keys = ("points", "sensor", "face", "bary", "surface", "sigma")
        cols: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        tri, offset = [], 0
        for k, (part, view) in enumerate(zip(parts, views)):
            keep = part.keep
            points = view.origin + part.t[keep, None] * part.d[keep]
            for key, val in zip(keys, (points, np.full(int(keep.sum()), k, np.int64), part.face[keep],
                                       part.bary[keep], part.surface[keep], part.sigma[keep])):
                cols[key].append(val)
            if cfg.faces == "noisy":
                local = _grid_triangles(part, cfg.max_incidence)
                p = points[local]
                # each triangle faces the sensor that saw it
                back = (np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]) * (view.origin - p[:, 0])).sum(1) < 0
                local[back] = local[back][:, ::-1]
                tri.append(offset + local)
            offset += int(keep.sum())
        cat = {key: np.concatenate(val) for key, val in cols.items()}
        cat["bary"][cat["face"] < 0] = np.nan
        sensors = np.array([w.origin for w in views])
        normals = None
        if cfg.normals == "estimated":
            from bodydata.mesh.pointcloud import estimate_normals

            normals = estimate_normals(cat["points"], viewpoints=sensors[cat["sensor"]], backend=cfg.backend)
        faces = np.concatenate(tri).astype(np.int64) if tri else np.zeros((0, 3), np.int64)
        return Scan(cat["points"], cat["sensor"], sensors, cat["face"], cat["bary"], cat["surface"], cat["sigma"],
                    normals, faces, sum(int(np.prod(p.shape)) for p in parts), sum(p.n_grazing for p in parts),
                    self.up.copy())


def _grid_triangles(part: _ViewHits, max_incidence: float) -> np.ndarray:
    """Two triangles per 2x2 block of kept pixels -> (M, 3) int64 rows into the view's kept points; a triangle
    is dropped when two of its corners differ in depth by more than a surface at ``max_incidence`` can make
    across a pixel diagonal, plus four noise deviations (a depth jump: the silhouette of a limb over another)."""
    H, W = part.shape
    keep = part.keep.reshape(H, W)
    index = np.full(H * W, -1, np.int64)
    index[part.keep] = np.arange(int(part.keep.sum()))
    index = index.reshape(H, W)
    t = np.where(keep, part.t.reshape(H, W), 0.0)
    sig = part.sigma.reshape(H, W)
    a, b, c, d = (slice(None, -1), slice(None, -1)), (slice(None, -1), slice(1, None)), \
        (slice(1, None), slice(None, -1)), (slice(1, None), slice(1, None))
    tan = np.tan(np.deg2rad(min(max_incidence, 89.0)))
    out = []
    for corners in ((a, b, c), (b, d, c)):
        ok = np.logical_and.reduce([keep[s] for s in corners])
        ts = np.stack([t[s] for s in corners])
        limit = np.sqrt(2) * (part.pitch * ts.max(0) * tan + 4 * np.stack([sig[s] for s in corners]).max(0))
        ok &= (ts.max(0) - ts.min(0)) <= limit
        out.append(np.stack([index[s][ok] for s in corners], 1))
    return np.concatenate(out)


def virtual_scan(vertices: np.ndarray, faces: np.ndarray, config: ScannerConfig | None = None) -> Scan:
    """One call: :class:`VirtualScanner` ``(config).scan(vertices, faces)``."""
    return VirtualScanner(config).scan(vertices, faces)
