"""Geodesic distances on a triangle mesh between vertices: edge-flip shortened paths, exact polyhedral (MMP), heat, Dijkstra.

Methods (``GeodesicSolver(vertices, faces, method)``):

- ``"flip"`` (what ``"exact"`` means): the Dijkstra edge path shortened by intrinsic edge flips until it is a locally
  shortest geodesic (FlipOut; :mod:`bodydata.mesh.flipout`, or the faster C++ of the optional ``potpourri3d`` when
  installed). Exact for the path's homotopy class; on FAUST_r bodies it matches ``"mmp"`` to 0.00-0.02 % on the
  benchmark's short pairs and 0.03-0.05 % on random ones (rarely a few % above, where the edge path went round the
  wrong side of a bump). A short pair takes ~0.4 ms in Python, ~0.05 ms with potpourri3d.
- ``"mmp"``: exact polyhedral geodesics (Mitchell-Mount-Papadimitriou window propagation) through the optional
  ``gdist`` package: the certified reference, ~5 ms a short pair, ~50 ms a whole-body propagation on 5k vertices.
- ``"heat"``: the heat method (optional ``potpourri3d``); smooth and fast but approximate (13 % short on neighbouring
  vertices, a few % either way farther).
- ``"dijkstra"``: shortest paths along mesh edges (scipy). A zigzag on the edge graph, so it overestimates the
  surface geodesic (about 5 % on remeshed human bodies beyond a few edges).

``solver.note`` is the one-line description a report prints with its figures.
"""
from __future__ import annotations

import importlib

import numpy as np

from bodydata.errors import BodydataError, MeshError

__all__ = ["METHODS", "METHOD_NOTES", "GeodesicSolver", "available_methods", "geodesic_distances", "resolve_method"]

METHODS = ("flip", "mmp", "heat", "dijkstra")
METHOD_NOTES = {
    "flip": "edge-flip shortened Dijkstra paths: locally shortest (exact) geodesics (FlipOut)",
    "mmp": "exact polyhedral geodesics (MMP window propagation, gdist)",
    "heat": "heat method (potpourri3d), approximate",
    "dijkstra": "shortest paths along mesh edges (Dijkstra), overestimates the surface geodesic by a few %",
}
# Optional packages: required by "mmp" and "heat"; "flip" only runs faster with its own.
_PACKAGE = {"mmp": "gdist", "flip": "potpourri3d", "heat": "potpourri3d"}
# Sources whose Dijkstra rows are held at once: bounds memory to about 160 MB whatever the mesh size.
_ROW_BUDGET = 20_000_000


def _module(method: str):
    """The optional package of ``method``, or None when it is not installed or does not load (a binary build
    compiled against another numpy raises ValueError on import)."""
    if method not in _PACKAGE:
        return None
    try:
        return importlib.import_module(_PACKAGE[method])
    except (ImportError, ValueError):
        return None


def available_methods() -> tuple[str, ...]:
    """The methods usable here, best first: ``"flip"`` and ``"dijkstra"`` always, the others with their package."""
    return tuple(m for m in METHODS if m in ("flip", "dijkstra") or _module(m) is not None)


def resolve_method(method: str | None) -> str:
    """A concrete method name: ``"exact"`` or None -> ``"flip"``; unknown or not installed -> one-line error."""
    if method in (None, "exact"):
        return "flip"
    if method not in METHODS:
        raise BodydataError(f"unknown geodesic method {method!r}; choose from exact, {', '.join(METHODS)}")
    if method not in available_methods():
        raise BodydataError(f"geodesic method {method!r} needs the optional {_PACKAGE[method]} package "
                            "(pip install 'bodydata[geodesic]')")
    return method


class GeodesicSolver:
    """Geodesic distances on one triangle mesh.

    vertices : (n, 3) float64; faces : (m, 3) int (0-based); method : see the module docstring (``"exact"`` or
    None resolve through :func:`resolve_method`; the concrete name is kept in ``self.method``); pure_python: run
    ``"flip"`` in pure Python even where potpourri3d is installed (for comparisons). Validates the mesh
    and builds the edge graph (and the backend's own structures) once; ``pairs`` and ``from_sources`` then answer
    many queries.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, method: str | None = "exact", pure_python: bool = False):
        import scipy.sparse as sp

        from bodydata.mesh.topology import edges

        v = np.ascontiguousarray(vertices, dtype=np.float64)
        f = np.asarray(faces)
        if v.ndim != 2 or v.shape[1] != 3 or not np.isfinite(v).all():
            raise MeshError(None, f"vertices must be finite (n, 3), got shape {v.shape}")
        if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0 or not np.issubdtype(f.dtype, np.integer):
            raise MeshError(None, f"faces must be (m, 3) integer triangles, got shape {f.shape} {f.dtype}")
        if f.min() < 0 or f.max() >= len(v):
            raise MeshError(None, f"face index out of range [0, {len(v)})")
        if ((f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])).any():
            raise MeshError(None, "a face repeats a vertex")
        self.vertices, self.faces = v, np.ascontiguousarray(f, dtype=np.int64)
        self.method = resolve_method(method)
        self.n = len(v)
        e = edges(self.faces)
        self.edge_lengths = np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1)
        self.graph = sp.csr_matrix((self.edge_lengths, (e[:, 0], e[:, 1])), shape=(self.n, self.n))
        self._backend = None
        if self.method == "mmp":
            self._faces32 = self.faces.astype(np.int32)
        #: what runs the method: "scipy", "gdist", "potpourri3d" or "bodydata" (the pure-Python flips)
        self.implementation = {"dijkstra": "scipy", "mmp": "gdist", "heat": "potpourri3d"}.get(self.method)
        if self.method == "flip":
            self.implementation = "bodydata" if pure_python or _module("flip") is None else "potpourri3d"
        if self.implementation == "bodydata":
            from bodydata.mesh.flipout import FlipGeodesics

            self._backend = FlipGeodesics(v, self.faces)
        elif self.method in ("flip", "heat"):
            pp3d = _module(self.method)
            make = pp3d.EdgeFlipGeodesicSolver if self.method == "flip" else pp3d.MeshHeatMethodDistanceSolver
            try:
                self._backend = make(v, self.faces)
            except (RuntimeError, ValueError) as exc:  # the C++ side rejects non-manifold input
                raise MeshError(None, f"{self.method} geodesics cannot use this mesh: {exc}") from None

    @property
    def note(self) -> str:
        """One line naming the method (and for "flip" the implementation that ran), for reports."""
        if self.method != "flip":
            return METHOD_NOTES[self.method]
        return f"{METHOD_NOTES['flip']}, {'pure Python' if self.implementation == 'bodydata' else 'potpourri3d'}"

    def _check(self, idx, what: str) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64).ravel()
        if len(idx) and (idx.min() < 0 or idx.max() >= self.n):
            raise BodydataError(f"{what} vertex index out of range [0, {self.n})")
        return idx

    def _dijkstra_rows(self, sources: np.ndarray) -> np.ndarray:
        from scipy.sparse.csgraph import dijkstra

        out = np.empty((len(sources), self.n))
        step = max(1, _ROW_BUDGET // self.n)
        for i in range(0, len(sources), step):
            out[i:i + step] = dijkstra(self.graph, directed=False, indices=sources[i:i + step])
        return out

    def from_sources(self, sources: np.ndarray) -> np.ndarray:
        """(s, n) float64: distance from each of the ``sources`` (s,) int vertices to every vertex.

        ``"flip"`` answers pairs only (one path each); use ``pairs`` with it.
        """
        sources = self._check(sources, "source")
        if self.method == "dijkstra":
            return self._dijkstra_rows(sources)
        if self.method == "heat":
            return np.stack([self._backend.compute_distance(int(s)) for s in sources]) if len(sources) \
                else np.zeros((0, self.n))
        if self.method == "mmp":
            gdist = _module("mmp")
            return np.stack([gdist.compute_gdist(self.vertices, self._faces32, np.array([s], np.int32))
                             for s in sources]) if len(sources) else np.zeros((0, self.n))
        raise BodydataError("flip geodesics give source-target pairs only; call pairs()")

    def pairs(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """(k,) float64: distance from ``sources[i]`` to ``targets[i]`` (both (k,) int vertex indices).

        Repeated pairs are solved once. Exact methods are bounded by the Dijkstra distance (never shorter than the
        geodesic), so ``"mmp"`` propagates only as far as each source's farthest target needs.
        """
        sources, targets = self._check(sources, "source"), self._check(targets, "target")
        if len(sources) != len(targets):
            raise BodydataError(f"{len(sources)} sources but {len(targets)} targets")
        out = np.zeros(len(sources))
        live = sources != targets
        if not live.any():
            return out
        uniq, inv = np.unique(np.stack([sources[live], targets[live]], 1), axis=0, return_inverse=True)
        inv = inv.ravel()
        if self.implementation == "potpourri3d" and self.method == "flip":
            d = np.array([self._flip_length(int(s), int(t)) for s, t in uniq])
        else:
            d = np.empty(len(uniq))
            us, row = np.unique(uniq[:, 0], return_inverse=True)
            row = row.ravel()
            step = max(1, _ROW_BUDGET // self.n)
            for lo in range(0, len(us), step):
                chunk = us[lo:lo + step]
                sel = (row >= lo) & (row < lo + len(chunk))
                if self.method == "flip":
                    d[sel] = self._flip_native(chunk, row[sel] - lo, uniq[sel, 1])
                elif self.method in ("dijkstra", "heat"):
                    rows = self._dijkstra_rows(chunk) if self.method == "dijkstra" else self.from_sources(chunk)
                    d[sel] = rows[row[sel] - lo, uniq[sel, 1]]
                else:
                    bound = self._dijkstra_rows(chunk)[row[sel] - lo, uniq[sel, 1]]
                    d[sel] = self._mmp_bounded(uniq[sel, 0], uniq[sel, 1], bound)
        out[live] = d[inv]
        return out

    def _flip_native(self, chunk: np.ndarray, row: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The pure-Python flip lengths: each target's Dijkstra path from source ``chunk[row[i]]``, shortened."""
        from scipy.sparse.csgraph import dijkstra

        _, pred = dijkstra(self.graph, directed=False, indices=chunk, return_predecessors=True)
        out = np.empty(len(targets))
        for i, (r, t) in enumerate(zip(row.tolist(), targets.tolist())):
            p, src, path = pred[r], int(chunk[r]), [t]
            while path[-1] != src:
                if p[path[-1]] < 0:
                    raise BodydataError(f"no path from vertex {src} to {t}: they lie on separate components")
                path.append(int(p[path[-1]]))
            out[i] = self._backend.length(path[::-1])
        return out

    def _flip_length(self, s: int, t: int) -> float:
        try:
            path = self._backend.find_geodesic_path(s, t)
        except (RuntimeError, ValueError) as exc:  # no path between components, ...
            raise BodydataError(f"no flip geodesic from vertex {s} to {t}: {exc}") from None
        return float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())

    def _mmp_bounded(self, src: np.ndarray, tgt: np.ndarray, bound: np.ndarray) -> np.ndarray:
        """Exact distances for pairs grouped by source, each propagation stopped past its targets' Dijkstra bound."""
        gdist = _module("mmp")
        d = np.empty(len(src))
        order = np.argsort(src, kind="stable")
        cuts = np.flatnonzero(np.diff(src[order])) + 1
        for grp in np.split(order, cuts):
            # The slack keeps a target whose exact distance equals its Dijkstra bound (a straight edge path)
            # inside the propagation radius despite rounding.
            radius = float(bound[grp].max()) * (1 + 1e-9) + 1e-12
            got = gdist.compute_gdist(self.vertices, self._faces32, np.array([src[grp[0]]], np.int32),
                                      tgt[grp].astype(np.int32), max_distance=radius)
            miss = ~np.isfinite(got) | (got > bound[grp] * (1 + 1e-9) + 1e-12)
            if miss.any():  # not reached within the radius: the unbounded propagation settles it
                got[miss] = gdist.compute_gdist(self.vertices, self._faces32, np.array([src[grp[0]]], np.int32),
                                                tgt[grp][miss].astype(np.int32))
            d[grp] = got
        return d


def geodesic_distances(vertices: np.ndarray, faces: np.ndarray, sources: np.ndarray, targets: np.ndarray | None = None,
                       method: str | None = "exact") -> np.ndarray:
    """One call: (k,) float64 pair distances ``sources[i] -> targets[i]`` when ``targets`` is given, else
    (s, n) float64 distances from each source to every vertex (not for ``"flip"``)."""
    solver = GeodesicSolver(vertices, faces, method)
    return solver.from_sources(sources) if targets is None else solver.pairs(sources, targets)
