"""bodydata.mesh.topology against plain Python loops and known small meshes."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import trimesh

from bodydata.errors import MeshError
from bodydata.mesh import topology as T


def grid(nx: int, ny: int, jitter: float = 0.0, seed: int = 0):
    """Flat open grid in z = 0: (nx*ny, 3) vertices, 2*(nx-1)*(ny-1) faces, random diagonals."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(nx, dtype=float), np.arange(ny, dtype=float), indexing="ij")
    v = np.stack([x.ravel(), y.ravel(), np.zeros(nx * ny)], axis=1)
    interior = (x.ravel() > 0) & (x.ravel() < nx - 1) & (y.ravel() > 0) & (y.ravel() < ny - 1)
    v[interior, :2] += rng.uniform(-jitter, jitter, size=(interior.sum(), 2))
    faces = []
    for i in range(nx - 1):
        for j in range(ny - 1):
            a, b, c, d = i * ny + j, (i + 1) * ny + j, (i + 1) * ny + j + 1, i * ny + j + 1
            if rng.random() < 0.5:
                faces += [[a, b, c], [a, c, d]]
            else:
                faces += [[a, b, d], [b, c, d]]
    return v, np.asarray(faces, dtype=np.int64)


def sphere(level: int = 2):
    s = trimesh.creation.icosphere(subdivisions=level)
    return np.asarray(s.vertices, dtype=np.float64), np.asarray(s.faces, dtype=np.int64)


def loop_edge_faces(faces):
    count = defaultdict(int)
    for f in faces.tolist():
        for k in range(3):
            i, j = f[k], f[(k + 1) % 3]
            count[(min(i, j), max(i, j))] += 1
    return count


MESHES = {
    "grid": grid(5, 4),
    "sphere": sphere(1),
    "two_comp": (
        np.vstack([sphere(0)[0], sphere(0)[0] + 3.0, np.zeros((2, 3))]),  # + 2 isolated vertices
        np.vstack([sphere(0)[1], sphere(0)[1] + 12]),
    ),
}


@pytest.mark.parametrize("name", MESHES)
def test_edges_match_loop(name):
    v, f = MESHES[name]
    ref = sorted(loop_edge_faces(f))
    e = T.edges(f)
    assert e.dtype == np.int64 and e.shape == (len(ref), 2)
    assert np.array_equal(e, np.asarray(ref))
    assert np.all(e[:, 0] < e[:, 1])


@pytest.mark.parametrize("name", MESHES)
def test_one_ring_and_adjacency_match_loop(name):
    v, f = MESHES[name]
    n = len(v)
    nbrs = [set() for _ in range(n)]
    for a, b, c in f.tolist():
        nbrs[a] |= {b, c}
        nbrs[b] |= {a, c}
        nbrs[c] |= {a, b}
    indptr, indices = T.one_ring(f, n)
    assert indptr.dtype == np.int64 and indices.dtype == np.int64
    assert indptr.shape == (n + 1,) and indptr[-1] == len(indices)
    for i in range(n):
        assert indices[indptr[i] : indptr[i + 1]].tolist() == sorted(nbrs[i])
    dense = np.zeros((n, n))
    for i in range(n):
        dense[i, list(nbrs[i])] = 1.0
    a = T.adjacency_matrix(f, n)
    assert a.shape == (n, n)
    assert np.array_equal(a.toarray(), dense)


def test_boundary_of_open_grid_and_closed_sphere():
    v, f = grid(5, 4)
    b = T.boundary_edges(f)
    ref = sorted(e for e, c in loop_edge_faces(f).items() if c == 1)
    assert np.array_equal(b, np.asarray(ref))
    assert len(b) == 2 * (5 - 1) + 2 * (4 - 1)
    # Every boundary edge joins two vertices on the grid's outline.
    on_outline = (v[:, 0] == 0) | (v[:, 0] == 4) | (v[:, 1] == 0) | (v[:, 1] == 3)
    assert on_outline[b].all()
    assert not T.is_watertight(f)
    assert T.is_edge_manifold(f) and T.is_vertex_manifold(f, len(v))
    T.check_manifold(f, len(v))
    with pytest.raises(MeshError, match=r"^open\.ply: mesh has 14 boundary edges \(not watertight\)$"):
        T.check_manifold(f, len(v), path="open.ply", require_watertight=True)

    v, f = sphere(2)
    assert T.boundary_edges(f).shape == (0, 2)
    assert T.is_watertight(f) and T.is_edge_manifold(f) and T.is_vertex_manifold(f, len(v))
    T.check_manifold(f, len(v), require_watertight=True)
    # Euler characteristic of a sphere.
    assert len(v) - len(T.edges(f)) + len(f) == 2


def test_bow_tie_vertex_is_not_vertex_manifold():
    # Two triangles touching only at vertex 0.
    f = np.array([[0, 1, 2], [0, 3, 4]])
    assert T.is_edge_manifold(f)
    assert not T.is_vertex_manifold(f, 5)
    with pytest.raises(MeshError) as err:
        T.check_manifold(f, 5, path="bow.obj")
    msg = str(err.value)
    assert msg.startswith("bow.obj: vertex 0 is a non-manifold fan") and "\n" not in msg

    # Two closed spheres glued at one vertex: closed, edge-manifold, but vertex 0 is a bow-tie.
    v0, f0 = sphere(0)
    f1 = f0 + len(v0) - 1
    f1[f1 == len(v0) - 1 + 0] = 0  # vertex 0 of the second copy becomes vertex 0 of the first
    f = np.vstack([f0, f1])
    n = 2 * len(v0) - 1
    assert T.is_watertight(f) and T.is_edge_manifold(f)
    assert not T.is_vertex_manifold(f, n)
    assert T._fan_counts(f, n)[0] == 2
    with pytest.raises(MeshError, match=r"vertex 0 is a non-manifold fan"):
        T.check_manifold(f, n, require_watertight=True)


def test_edge_shared_by_three_faces():
    f = np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]])
    assert not T.is_edge_manifold(f)
    assert not T.is_watertight(f)
    with pytest.raises(MeshError) as err:
        T.check_manifold(f, 5, path="fin.ply")
    assert str(err.value) == "fin.ply: edge (0, 1) is shared by 3 faces (non-manifold)"


def test_vertex_manifold_matches_loop_on_damaged_sphere():
    """Fan counts against a per-vertex flood fill, on a sphere with faces removed (creating bow-ties)."""
    v, f = sphere(2)
    rng = np.random.default_rng(1)
    f = f[rng.random(len(f)) > 0.35]
    n = len(v)
    fans = T._fan_counts(f, n)
    for vert in range(n):
        inc = [tuple(x) for x in f.tolist() if vert in x]
        seen, comps = set(), 0
        for start in range(len(inc)):
            if start in seen:
                continue
            comps += 1
            stack = [start]
            while stack:
                a = stack.pop()
                if a in seen:
                    continue
                seen.add(a)
                for b in range(len(inc)):
                    shared = set(inc[a]) & set(inc[b])
                    if b not in seen and vert in shared and len(shared) >= 2:
                        stack.append(b)
        assert fans[vert] == comps, vert
    assert (fans > 1).any()  # the damage did create bow-ties, so the test is not vacuous
    assert T.is_vertex_manifold(f, n) == bool((fans <= 1).all())


def test_connected_components_match_loop():
    v, f = MESHES["two_comp"]
    n = len(v)
    labels = T.connected_components(f, n)
    assert labels.dtype == np.int64 and labels.shape == (n,)
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            a = parent[a]
        return a

    for a, b, c in f.tolist():
        for x, y in ((a, b), (b, c)):
            parent[find(x)] = find(y)
    roots = [find(i) for i in range(n)]
    # Same partition, numbered in order of the lowest vertex.
    first = {}
    ref = np.array([first.setdefault(r, len(first)) for r in roots])
    assert np.array_equal(labels, ref)
    assert labels.max() == 3  # two spheres + two isolated vertices


def test_bad_faces_raise_mesh_error():
    with pytest.raises(MeshError):
        T.edges(np.array([[0, 1]]))
    with pytest.raises(MeshError):
        T.adjacency_matrix(np.array([[0, 1, 5]]), 3)
    with pytest.raises(MeshError):
        T.edges(np.array([[0, -1, 2]]))


def test_empty_faces():
    assert T.edges(np.zeros((0, 3), int)).shape == (0, 2)
    assert not T.is_watertight(np.zeros((0, 3), int))
    indptr, indices = T.one_ring(np.zeros((0, 3), int), 3)
    assert indptr.tolist() == [0, 0, 0, 0] and len(indices) == 0


def test_check_manifold_bad_indices_name_the_path():
    with pytest.raises(MeshError, match=r"^m\.ply: face index 9 out of range \[0, 3\)$"):
        T.check_manifold(np.array([[0, 1, 9]]), 3, path="m.ply")
    with pytest.raises(MeshError, match=r"^m\.ply: negative face index -1$"):
        T.check_manifold(np.array([[0, 1, -1]]), 3, path="m.ply")
