"""Geodesic distances against closed forms: flat square, unrolled cylinder, sphere, and methods against each other."""
from __future__ import annotations

import heapq

import numpy as np
import pytest

from bodydata.errors import BodydataError, MeshError
from bodydata.mesh import geodesic
from bodydata.mesh.geodesic import GeodesicSolver, geodesic_distances, resolve_method


def _needs(method: str, name: str | None = None):
    return pytest.param(name or method, marks=pytest.mark.skipif(
        geodesic._module(method) is None, reason=f"optional {geodesic._PACKAGE[method]} not installed"))


# "flip" runs the pure-Python flips (pure_python=True); "flip-pp3d" the optional C++ one.
EXACT = [_needs("mmp"), "flip", _needs("flip", "flip-pp3d")]


def _solver(v, f, name: str) -> GeodesicSolver:
    solver = GeodesicSolver(v, f, name.split("-")[0], pure_python=name == "flip")
    assert solver.implementation == {"flip": "bodydata", "flip-pp3d": "potpourri3d"}.get(name, solver.implementation)
    return solver


def _flat_square(n_inner: int = 150, seed: int = 0):
    """Irregular Delaunay triangulation of the unit square: (v (n, 3), f (m, 3))."""
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, 9)[:-1]
    border = np.concatenate([np.stack([t, 0 * t], 1), np.stack([1 + 0 * t, t], 1),
                             np.stack([1 - t, 1 + 0 * t], 1), np.stack([0 * t, 1 - t], 1)])
    pts = np.concatenate([border, rng.uniform(0.02, 0.98, (n_inner, 2))])
    f = Delaunay(pts).simplices
    return np.column_stack([pts, np.zeros(len(pts))]), f


def _cylinder(sides: int = 24, rows: int = 9, radius: float = 0.5, height: float = 2.0):
    """Open prism: vertex (row i, side j) at index i * sides + j, quads split on alternating diagonals."""
    a = 2 * np.pi * np.arange(sides) / sides
    z = np.linspace(0, height, rows)
    v = np.array([[radius * np.cos(t), radius * np.sin(t), h] for h in z for t in a])
    f = []
    for i in range(rows - 1):
        for j in range(sides):
            p, q, r, s = i * sides + j, i * sides + (j + 1) % sides, (i + 1) * sides + (j + 1) % sides, (i + 1) * sides + j
            f += [[p, q, r], [p, r, s]] if (i + j) % 2 else [[p, q, s], [q, r, s]]
    return v, np.array(f), z, 2 * radius * np.sin(np.pi / sides)


def _naive_dijkstra(v, f, src):
    """Per-vertex heap Dijkstra over the face edges: (n,) distances, the reference for the scipy rows."""
    nbr = {i: set() for i in range(len(v))}
    for tri in f:
        for a, b in ((0, 1), (1, 2), (2, 0)):
            nbr[int(tri[a])].add(int(tri[b]))
            nbr[int(tri[b])].add(int(tri[a]))
    dist = np.full(len(v), np.inf)
    dist[src] = 0.0
    heap = [(0.0, src)]
    while heap:
        d, i = heapq.heappop(heap)
        if d > dist[i]:
            continue
        for j in nbr[i]:
            nd = d + float(np.linalg.norm(v[i] - v[j]))
            if nd < dist[j]:
                dist[j] = nd
                heapq.heappush(heap, (nd, j))
    return dist


@pytest.mark.parametrize("method", EXACT)
def test_flat_square_exact_equals_euclidean(method):
    v, f = _flat_square()
    rng = np.random.default_rng(1)
    s, t = rng.integers(0, len(v), 60), rng.integers(0, len(v), 60)
    d = _solver(v, f, method).pairs(s, t)
    assert np.allclose(d, np.linalg.norm(v[s] - v[t], axis=1), atol=1e-9)


def test_flat_square_dijkstra_overestimates():
    v, f = _flat_square()
    rng = np.random.default_rng(1)
    s, t = rng.integers(0, len(v), 60), rng.integers(0, len(v), 60)
    d = GeodesicSolver(v, f, "dijkstra").pairs(s, t)
    euclid = np.linalg.norm(v[s] - v[t], axis=1)
    far = euclid > 0.3
    assert (d >= euclid - 1e-12).all()
    assert np.mean(d[far] / euclid[far]) > 1.02     # edge zigzags: clearly longer than the straight line


@pytest.mark.parametrize("method", EXACT)
def test_cylinder_unrolled_distance(method):
    v, f, z, chord = _cylinder()
    sides, rows = 24, len(z)
    rng = np.random.default_rng(2)
    i0, i1 = rng.integers(0, rows, 40), rng.integers(0, rows, 40)
    j0, k = rng.integers(0, sides, 40), rng.integers(0, sides // 2 + 1, 40)
    s, t = i0 * sides + j0, i1 * sides + (j0 + k) % sides
    # The prism's sides unroll to a flat strip: k sides of width `chord` across, the height difference along.
    expect = np.hypot(k * chord, z[i1] - z[i0])
    d = _solver(v, f, method).pairs(s, t)
    assert np.allclose(d, expect, atol=1e-9)
    dj = GeodesicSolver(v, f, "dijkstra").pairs(s, t)
    assert (dj >= expect - 1e-12).all() and (dj > expect + 1e-3).any()


@pytest.mark.parametrize("method", [*EXACT, _needs("heat"), "dijkstra"])
def test_sphere_great_circle(method):
    trimesh = pytest.importorskip("trimesh")
    s = trimesh.creation.icosphere(subdivisions=4)
    v, f = np.asarray(s.vertices, float), np.asarray(s.faces)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, len(v), 25), rng.integers(0, len(v), 25)
    great = np.arccos(np.clip(np.einsum("ij,ij->i", v[a], v[b]), -1, 1))
    d = _solver(v, f, method).pairs(a, b)
    far = great > 0.3
    rel = d[far] / great[far] - 1
    if method == "dijkstra":
        assert rel.mean() > 0.05                                   # the edge graph's zigzag (7 % here)
    elif method == "heat":
        assert np.abs(rel).max() < 0.03
    else:
        # Inscribed facets (edges ~0.08 rad) make polyhedral paths a little shorter than the great circle (~0.06 %).
        assert (rel < 0).all() and np.abs(rel).max() < 0.002


def test_dijkstra_rows_match_naive_loop(anny_lite_template):
    t = anny_lite_template
    got = GeodesicSolver(t.vertices, t.faces, "dijkstra").from_sources(np.array([0, 500, 1000]))
    for row, src in zip(got, (0, 500, 1000)):
        assert np.allclose(row, _naive_dijkstra(t.vertices, t.faces, src))


@pytest.mark.skipif(geodesic._module("mmp") is None or geodesic._module("heat") is None,
                    reason="optional gdist and potpourri3d not both installed")
def test_methods_agree_on_a_body(anny_lite_template):
    t = anny_lite_template
    rng = np.random.default_rng(4)
    s, q = rng.integers(0, t.n_vertices, 80), rng.integers(0, t.n_vertices, 80)
    d = {m: GeodesicSolver(t.vertices, t.faces, m).pairs(s, q) for m in ("mmp", "flip", "heat", "dijkstra")}
    d["flip-py"] = _solver(t.vertices, t.faces, "flip").pairs(s, q)
    live = s != q
    assert (d["mmp"][~live] == 0).all()
    # mmp is the exact minimum; flip shortens the Dijkstra path, so it lies between the two
    for flip in ("flip", "flip-py"):
        assert (d["mmp"] <= d[flip] + 1e-9).all() and (d[flip] <= d["dijkstra"] + 1e-9).all()
        assert np.mean(d[flip][live] / d["mmp"][live] - 1) < 0.005
    # the Python flips and potpourri3d's shorten the same edge paths: mostly to the same geodesic
    assert np.median(np.abs(d["flip-py"][live] / d["flip"][live] - 1)) < 1e-9
    assert np.mean(d["dijkstra"][live] / d["mmp"][live] - 1) > 0.02
    assert abs(np.mean(d["heat"][live] / d["mmp"][live] - 1)) < 0.1
    # the bounded pair propagation equals full rows from the same sources
    rows = GeodesicSolver(t.vertices, t.faces, "mmp").from_sources(s[:5])
    assert np.allclose(rows[np.arange(5), q[:5]], d["mmp"][:5], atol=1e-12)
    assert np.allclose(geodesic_distances(t.vertices, t.faces, s[:5], q[:5], "mmp"), d["mmp"][:5])


def test_resolve_without_backends(monkeypatch):
    monkeypatch.setattr(geodesic, "_module", lambda method: None)
    assert resolve_method(None) == resolve_method("exact") == "flip"
    assert GeodesicSolver(*_flat_square(20)).implementation == "bodydata"
    with pytest.raises(BodydataError, match="needs the optional gdist"):
        resolve_method("mmp")
    with pytest.raises(BodydataError, match="needs the optional potpourri3d"):
        resolve_method("heat")
    with pytest.raises(BodydataError, match="unknown geodesic method"):
        resolve_method("euclid")


def test_bad_input_is_one_line_error():
    v, f = _flat_square(20)
    with pytest.raises(MeshError, match="out of range"):
        GeodesicSolver(v, f + len(v), "dijkstra")
    with pytest.raises(MeshError, match="repeats a vertex"):
        GeodesicSolver(v, np.array([[0, 0, 1]]), "dijkstra")
    solver = GeodesicSolver(v, f, "dijkstra")
    with pytest.raises(BodydataError, match="out of range"):
        solver.pairs([0], [len(v)])
    with pytest.raises(BodydataError, match="1 sources but 2 targets"):
        solver.pairs([0], [1, 2])


def test_flipout_walks_boundaries_and_restores_the_mesh():
    from bodydata.mesh.flipout import FlipGeodesics

    v, f = _flat_square()
    fg = FlipGeodesics(v, f)
    before = (list(fg.next), list(fg.tail), list(fg.len))
    # border points 0..8 run along y = 0: the path along the boundary is straight in both directions
    assert np.isclose(fg.length([0, 1, 2, 3]), 3 / 8) and np.isclose(fg.length([3, 2, 1, 0]), 3 / 8)
    # a bent edge path across the square is shortened to the straight line, and the flips are undone after
    from scipy.sparse.csgraph import dijkstra

    _, pred = dijkstra(GeodesicSolver(v, f, "dijkstra").graph, directed=False, indices=0, return_predecessors=True)
    path = [16]
    while path[-1] != 0:
        path.append(int(pred[path[-1]]))
    assert len(path) > 2 and np.isclose(fg.length(path[::-1]), np.hypot(1, 1), atol=1e-12)
    assert (list(fg.next), list(fg.tail), list(fg.len)) == before
    with pytest.raises(BodydataError, match="share no edge"):
        fg.length([0, 16])


def test_flipout_needs_oriented_faces():
    from bodydata.mesh.flipout import FlipGeodesics

    v, f = _flat_square(20)
    f = f.copy()
    f[0] = f[0, ::-1]
    with pytest.raises(MeshError, match="consistently oriented"):
        FlipGeodesics(v, f)
