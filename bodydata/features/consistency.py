"""As-consistent-as-possible rotation logs: axis signs and integer turns by a fast graph method.

A rotation with principal axis ``a_i`` and angle ``theta_i`` in [0, pi] has the logs
``a_i (theta_i + 2 pi m)``, m integer; ``-a_i (2 pi - theta_i)`` is the m = -1 member. ACAP (Gao et al.,
TVCG 2019) picks one per vertex in two integer programs over the mesh edges:

1. axis signs ``s_i`` in {+1, -1} (a flip replaces (a, theta) by (-a, 2 pi - theta)) minimising the number
   of edges whose signed axes point into opposite half spaces, ``s_i s_j a_i . a_j < 0``
   (:func:`axis_objective`; edges touching a zero rotation count for nothing);
2. integer turns ``k_i`` minimising ``sum_edges (psi_i - psi_j)^2`` with ``psi_i = phi_i + 2 pi k_i`` and
   ``phi_i`` the angle after step 1 (:func:`turn_objective`).

The log is then ``r_i = s_i a_i psi_i``. The fast method here (no Python loop per vertex):

* propagation along a spanning tree (a maximum spanning tree of |a_i . a_j| for signs, a minimum spanning
  tree of the wrapped angle differences for turns), the path sums computed by pointer jumping;
* local improvement: repeated rounds of independent single-vertex moves with a positive gain, then
  moves of whole regions (connected components of the agreeing edges), until nothing improves;
* on a genus-0 mesh (given its :class:`DualGraph`) the signs of a greedy T-join (:func:`tjoin_signs`: the
  disagreeing edges are the dual paths pairing up the "frustrated" faces, nearest pairs first, by rounds of
  multi-source Dijkstra; near linear in the mesh size however many faces are frustrated) are tried too,
  three times with different tie-breaks, and the best sign field is kept.

One global degree of freedom remains (adding 2 pi to every psi, or equivalently flipping every sign);
``anchor`` fixes it (see :func:`consistent_rotations`). :mod:`bodydata.features.consistency_exact` solves
both programs exactly for comparison (axis signs: T-join with an exact matching; turns: HiGHS MIP).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree

__all__ = [
    "DualGraph",
    "tjoin_signs",
    "ConsistentRotations",
    "consistent_rotations",
    "axis_objective",
    "turn_objective",
    "axis_edge_signs",
    "improve_signs",
    "improve_turns",
    "propagate_signs",
    "propagate_turns",
    "logs_from",
    "apply_anchor",
    "TWO_PI",
]

TWO_PI = 2.0 * np.pi


@dataclass
class ConsistentRotations:
    """Result for one mesh: ``r (n, 3)`` consistent logs, ``signs (n,) int8`` (+1/-1, relative to the
    principal axis), ``turns (n,) int64`` (k_i), ``axis_cost`` (disagreeing edges) and ``turn_cost``."""

    r: np.ndarray
    signs: np.ndarray
    turns: np.ndarray
    axis_cost: float
    turn_cost: float


def axis_edge_signs(axis: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(e,) float64 in {-1, 0, +1}: sign of a_i . a_j (0 where either axis is zero)."""
    d = np.einsum("ei,ei->e", axis[edges[:, 0]], axis[edges[:, 1]])
    return np.sign(d)


def axis_objective(signs: np.ndarray, sigma: np.ndarray, edges: np.ndarray) -> int:
    """Number of edges with ``s_i s_j sigma_ij < 0`` (sigma from :func:`axis_edge_signs`)."""
    return int(np.count_nonzero(signs[edges[:, 0]] * signs[edges[:, 1]] * sigma < 0))


def turn_objective(psi: np.ndarray, edges: np.ndarray) -> float:
    """``sum_edges (psi_i - psi_j)^2`` for unwrapped angles ``psi (n,)``."""
    d = psi[edges[:, 0]] - psi[edges[:, 1]]
    return float(d @ d)


def _path_sums(n: int, tree_edges: np.ndarray, tree_values: np.ndarray, root: int) -> np.ndarray:
    """Sum of ``tree_values`` along the spanning-forest path from each component's root to every vertex.

    tree_edges : (t, 2) int (a forest); tree_values : (t,) float, the value of the edge read from edge[0]
    to edge[1] (read the other way it is negated). ``root`` is the root of its component; other components
    are rooted at their lowest vertex. Computed by pointer jumping (log2(depth) vectorised rounds).
    """
    i, j = tree_edges[:, 0], tree_edges[:, 1]
    g = sp.csr_matrix((np.ones(2 * len(i)), (np.r_[i, j], np.r_[j, i])), shape=(n, n))
    ncomp, labels = connected_components(g, directed=False)
    # one BFS for the whole forest: a virtual vertex n joined to root and to each other component's lowest vertex
    first = np.full(ncomp, n, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n))
    first[labels[root]] = root
    gv = sp.csr_matrix((np.ones(2 * len(i) + 2 * ncomp), (np.r_[i, j, np.full(ncomp, n), first],
                                                        np.r_[j, i, first, np.full(ncomp, n)])), shape=(n + 1, n + 1))
    _, pred = breadth_first_order(gv, n, directed=False, return_predecessors=True)
    parent = pred[:n].astype(np.int64)
    parent[parent == n] = -1
    # value of the edge parent(v) -> v
    key_fwd = i * n + j
    key_bwd = j * n + i
    keys = np.r_[key_fwd, key_bwd]
    vals = np.r_[tree_values, -tree_values]
    order = np.argsort(keys)
    keys, vals = keys[order], vals[order]
    has = parent >= 0
    v = np.flatnonzero(has)
    step = np.zeros(n)
    step[v] = vals[np.searchsorted(keys, parent[v] * n + v)]
    # pointer jumping: total(v) = step(v) + total(parent(v))
    total = step.copy()
    jump = parent.copy()
    while True:
        m = jump >= 0
        if not np.any(m):
            break
        total[m] += total[jump[m]]
        nj = np.full(n, -1, dtype=np.int64)
        nj[m] = jump[jump[m]]
        jump = nj
    return total


def _independent_best(gain: np.ndarray, adj: sp.csr_matrix, rng: np.random.Generator) -> np.ndarray:
    """Vertices with positive gain that beat every neighbour (gain, then a random priority): an independent set."""
    pos = gain > 0
    if not np.any(pos):
        return pos
    pri = np.where(pos, gain + rng.random(len(gain)) * 1e-9 * (1.0 + np.abs(gain)), -np.inf)
    # max over neighbours via the CSR structure (rows with no neighbours give -inf)
    vals = pri[adj.indices]
    nb_max = np.full(len(gain), -np.inf)
    nz = np.diff(adj.indptr) > 0
    nb_max[nz] = np.maximum.reduceat(vals, adj.indptr[:-1][nz])
    return pos & (pri > nb_max)


def improve_signs(signs: np.ndarray, sigma: np.ndarray, edges: np.ndarray, n: int, max_rounds: int = 200,
                  seed: int = 0) -> np.ndarray:
    """Local improvement of axis signs (single flips, then region flips), never increasing the objective."""
    rng = np.random.default_rng(seed)
    s = signs.astype(np.float64).copy()
    i, j = edges[:, 0], edges[:, 1]
    active = sigma != 0
    ia, ja, sg = i[active], j[active], sigma[active]
    adj = sp.csr_matrix((np.ones(2 * len(ia)), (np.r_[ia, ja], np.r_[ja, ia])), shape=(n, n))
    for _ in range(max_rounds):
        changed = False
        # single-vertex flips: gain = (#disagreeing - #agreeing) incident edges
        for _ in range(max_rounds):
            a = s[ia] * s[ja] * sg                          # +1 agree, -1 disagree
            gain = -(np.bincount(ia, weights=a, minlength=n) + np.bincount(ja, weights=a, minlength=n))
            flip = _independent_best(gain, adj, rng)
            if not np.any(flip):
                break
            s[flip] *= -1.0
            changed = True
        # region flips: regions = components of agreeing edges; flipping one toggles its crossing edges
        a = s[ia] * s[ja] * sg
        agree = a > 0
        ga = sp.csr_matrix((np.ones(int(agree.sum())), (ia[agree], ja[agree])), shape=(n, n))
        nc, lab = connected_components(ga, directed=False)
        if nc <= 1:
            break
        li, lj = lab[ia], lab[ja]
        cross = li != lj
        gain_c = -(np.bincount(li[cross], weights=a[cross], minlength=nc) + np.bincount(lj[cross], weights=a[cross], minlength=nc))
        cadj = sp.csr_matrix((np.ones(2 * int(cross.sum())), (np.r_[li[cross], lj[cross]], np.r_[lj[cross], li[cross]])), shape=(nc, nc))
        flip_c = _independent_best(gain_c, cadj, rng)
        if not np.any(flip_c):
            if not changed:
                break
            continue
        s[flip_c[lab]] *= -1.0
    return s.astype(np.int8)


def improve_turns(phi: np.ndarray, turns: np.ndarray, edges: np.ndarray, n: int, max_rounds: int = 200,
                  seed: int = 0) -> np.ndarray:
    """Local improvement of integer turns (single-vertex moves to the best k, then region shifts by +-1)."""
    rng = np.random.default_rng(seed)
    k = turns.astype(np.int64).copy()
    i, j = edges[:, 0], edges[:, 1]
    adj = sp.csr_matrix((np.ones(2 * len(i)), (np.r_[i, j], np.r_[j, i])), shape=(n, n))
    deg = np.asarray(adj.sum(axis=1)).ravel()
    degs = np.maximum(deg, 1.0)
    for _ in range(max_rounds):
        changed = False
        for _ in range(max_rounds):
            psi = phi + TWO_PI * k
            nb_sum = np.asarray(adj @ psi).ravel()
            nb_sq = np.asarray(adj @ (psi * psi)).ravel()
            best = k + np.rint((nb_sum / degs - psi) / TWO_PI).astype(np.int64)
            new = phi + TWO_PI * best
            # cost_i(x) = deg x^2 - 2 x nb_sum + nb_sq; gain = cost(old) - cost(new)
            gain = (deg * psi * psi - 2 * psi * nb_sum) - (deg * new * new - 2 * new * nb_sum)
            gain = np.where(best != k, gain, 0.0)
            gain = np.where(gain > 1e-9 * (1.0 + nb_sq), gain, 0.0)
            mv = _independent_best(gain, adj, rng)
            if not np.any(mv):
                break
            k[mv] = best[mv]
            changed = True
        psi = phi + TWO_PI * k
        d = psi[i] - psi[j]
        smooth = np.abs(d) < np.pi
        gs = sp.csr_matrix((np.ones(int(smooth.sum())), (i[smooth], j[smooth])), shape=(n, n))
        nc, lab = connected_components(gs, directed=False)
        if nc <= 1:
            break
        li, lj = lab[i], lab[j]
        cross = li != lj
        dc, lic, ljc = d[cross], li[cross], lj[cross]
        # shifting region C by +2pi changes each crossing edge (C side first) d -> d + 2pi
        sum_d = np.bincount(lic, weights=dc, minlength=nc) - np.bincount(ljc, weights=dc, minlength=nc)
        cnt = np.bincount(lic, minlength=nc) + np.bincount(ljc, minlength=nc)
        gain_up = -(4 * np.pi * sum_d + 4 * np.pi**2 * cnt)      # shift by +1 turn
        gain_dn = -(-4 * np.pi * sum_d + 4 * np.pi**2 * cnt)     # shift by -1 turn
        gain_c = np.maximum(gain_up, gain_dn)
        dirc = np.where(gain_up >= gain_dn, 1, -1)
        gain_c = np.where(gain_c > 1e-9, gain_c, 0.0)
        cadj = sp.csr_matrix((np.ones(2 * int(cross.sum())), (np.r_[lic, ljc], np.r_[ljc, lic])), shape=(nc, nc))
        mv_c = _independent_best(gain_c, cadj, rng)
        if not np.any(mv_c):
            if not changed:
                break
            continue
        k += np.where(mv_c[lab], dirc[lab], 0)
    return k


def _spanning_tree(n: int, edges: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Edge indices (into ``edges``, i < j rows) of a minimum spanning forest for ``cost (e,) > 0``."""
    if len(edges) == 0:
        return np.zeros(0, np.int64)
    g = sp.csr_matrix((cost, (edges[:, 0], edges[:, 1])), shape=(n, n))
    t = minimum_spanning_tree(g).tocoo()
    lo, hi = np.minimum(t.row, t.col), np.maximum(t.row, t.col)
    key = edges[:, 0].astype(np.int64) * n + edges[:, 1]
    order = np.argsort(key)
    return order[np.searchsorted(key[order], lo.astype(np.int64) * n + hi)]


def propagate_signs(axis: np.ndarray, edges: np.ndarray, root: int = 0) -> np.ndarray:
    """Initial axis signs by propagation along a maximum spanning tree of |a_i . a_j| (root keeps +1)."""
    n = len(axis)
    dots = np.einsum("ei,ei->e", axis[edges[:, 0]], axis[edges[:, 1]])
    tree = _spanning_tree(n, edges, 2.0 - np.abs(dots))       # cost in [1, 2]: prefer confident edges
    neg = (dots[tree] < 0).astype(np.float64)
    # parity of the number of negative tree edges on the root path (read backwards an edge counts -1,
    # which has the same parity)
    total = _path_sums(n, edges[tree], neg, root)
    parity = np.rint(np.abs(total)).astype(np.int64) % 2
    return np.where(parity == 1, -1, 1).astype(np.int8)


def propagate_turns(phi: np.ndarray, edges: np.ndarray, root: int = 0) -> np.ndarray:
    """Initial integer turns by unwrapping along a minimum spanning tree of the wrapped differences."""
    n = len(phi)
    d = phi[edges[:, 1]] - phi[edges[:, 0]]
    wrapped = d - TWO_PI * np.rint(d / TWO_PI)
    tree = _spanning_tree(n, edges, 1.0 + np.abs(wrapped))
    # crossing edge i -> j adds round((phi_i - phi_j) / 2pi) turns
    step = np.rint(-d[tree] / TWO_PI)
    total = _path_sums(n, edges[tree], step, root)
    return np.rint(total).astype(np.int64)


def logs_from(axis: np.ndarray, theta: np.ndarray, signs: np.ndarray, turns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r (n, 3), psi (n,)) from principal axis/angle, signs and turns: r = s a (phi + 2 pi k)."""
    phi = np.where(signs > 0, theta, TWO_PI - theta)
    psi = phi + TWO_PI * turns
    return (signs[:, None] * axis) * psi[:, None], psi


@dataclass
class DualGraph:
    """Faces-and-edges structure of a mesh for the planar sign solver.

    ``edges (e, 2)`` as :func:`bodydata.mesh.topology.edges`; ``edge_faces (e, 2)`` the two faces of each edge
    (a boundary edge's second face is a dual vertex standing for its boundary loop, numbered from m);
    ``n_dual`` = m + number of boundary loops; ``genus`` of the surface (the planar solver needs 0 and one
    connected component).
    """

    edges: np.ndarray
    edge_faces: np.ndarray
    n_dual: int
    genus: int
    connected: bool

    @classmethod
    def from_faces(cls, n_vertices: int, faces: np.ndarray) -> "DualGraph":
        from bodydata.mesh.topology import edge_face_counts

        f = np.asarray(faces, np.int64)
        e, counts = edge_face_counts(f)
        he = np.stack([f, np.roll(f, -1, axis=1)], axis=2).reshape(-1, 2)
        key_he = np.sort(he, axis=1) @ np.array([n_vertices, 1])
        key_e = e @ np.array([n_vertices, 1])
        eid = np.searchsorted(key_e, key_he)
        face_of = np.repeat(np.arange(len(f)), 3)
        ef = np.full((len(e), 2), -1, dtype=np.int64)
        order = np.argsort(eid, kind="stable")
        first = np.r_[True, eid[order][1:] != eid[order][:-1]]
        ef[eid[order][first], 0] = face_of[order][first]
        ef[eid[order][~first], 1] = face_of[order][~first]
        bnd = np.flatnonzero(counts == 1)
        loops = 0
        if len(bnd):
            g = sp.csr_matrix((np.ones(len(bnd)), (e[bnd, 0], e[bnd, 1])), shape=(n_vertices, n_vertices))
            _, lab = connected_components(g, directed=False)
            loop_ids, loop_of = np.unique(lab[e[bnd, 0]], return_inverse=True)
            loops = len(loop_ids)
            ef[bnd, 1] = len(f) + loop_of
        ok = bool(np.all(counts <= 2))
        g = sp.csr_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n_vertices, n_vertices))
        ncomp = connected_components(g, directed=False)[0]
        chi = n_vertices - len(e) + len(f) + loops
        return cls(e, ef, len(f) + loops, (2 - chi) // 2 if ok else -1, ncomp == 1 and ok)

    @property
    def planar(self) -> bool:
        """True when the planar (T-join) sign solver applies: one connected genus-0 manifold surface."""
        return self.genus == 0 and self.connected


def _dominant_match(a: np.ndarray, b: np.ndarray, nd: int, rng: np.random.Generator) -> np.ndarray:
    """Candidates (a_k, b_k) that are the lowest-priority candidate at both their ends (a matching; non-empty
    whenever there are candidates: the globally lowest one always wins)."""
    pri = rng.random(len(a))
    best = np.full(nd, np.inf)
    np.minimum.at(best, a, pri)
    np.minimum.at(best, b, pri)
    return (best[a] == pri) & (best[b] == pri)


def _greedy_tjoin(g: sp.csr_matrix, term: np.ndarray, ef: np.ndarray, nd: int, u_set: np.ndarray,
                  seed: int = 0) -> None:
    """Greedy T-join, nearest pairs first, toggling the chosen dual paths in ``u_set (e,) bool`` in place.

    Each round is one multi-source Dijkstra (the Voronoi cells of the unpaired terminals, O(e log e) memory
    and time whatever the number of terminals); a dual edge joining two cells offers the path
    terminal - edge - terminal, and every offer that is the shortest at both its terminals is taken
    (the globally shortest always is, so each round pairs at least two). g : (nd, nd) dual edge costs.
    """
    from scipy.sparse.csgraph import dijkstra

    rng = np.random.default_rng(seed)
    a, b = ef[:, 0], ef[:, 1]
    w = np.asarray(g[a, b]).ravel()
    key = np.minimum(a, b) * nd + np.maximum(a, b)
    korder = np.argsort(key)
    ks = key[korder]
    left = np.asarray(term)
    while len(left) > 1:
        dist, pred, src = dijkstra(g, directed=False, indices=left, return_predecessors=True, min_only=True)
        c = np.flatnonzero((src[a] != src[b]) & (src[a] >= 0) & (src[b] >= 0))
        if not len(c):
            break  # the rest lie in other components (cannot happen on a connected surface)
        length = dist[a[c]] + w[c] + dist[b[c]]
        # lowest (length, random) offer at both terminals
        pri = length + 1e-3 * rng.random(len(c))
        best = np.full(nd, np.inf)
        np.minimum.at(best, src[a[c]], pri)
        np.minimum.at(best, src[b[c]], pri)
        c = c[(best[src[a[c]]] == pri) & (best[src[b[c]]] == pri)]
        np.logical_xor.at(u_set, c, True)
        cur = np.r_[a[c], b[c]]
        while len(cur):  # walk both halves back to their terminals, one edge per step for all paths at once
            p = pred[cur]
            m = p >= 0
            cur, p = cur[m], p[m]
            if not len(cur):
                break
            idx = korder[np.searchsorted(ks, np.minimum(cur, p) * nd + np.maximum(cur, p))]
            np.logical_xor.at(u_set, idx, True)
            cur = p
        paired = np.zeros(nd, bool)
        paired[src[a[c]]] = paired[src[b[c]]] = True
        left = left[~paired[left]]


def tjoin_signs(sigma: np.ndarray, dual: DualGraph, root: int, n: int, matching: str = "exact",
                seed: int = 0) -> np.ndarray:
    """Axis signs with the fewest disagreeing edges on a genus-0 mesh, as a minimum T-join of the dual graph.

    A set U of disagreeing edges is realisable by some signs iff every face cycle holds an odd number of U
    edges exactly when it holds an odd number of negative edges (on a genus-0 surface the faces generate all
    cycles); so U is a T-join of the dual graph, T = the frustrated faces, unit edge costs (zero for edges
    touching a zero rotation). Shortest dual paths from every frustrated face, then a perfect matching of
    them: ``"exact"`` (minimum weight, networkx blossom: optimal; seconds to minutes with thousands of
    frustrated faces) or ``"greedy"`` (closest pairs first by rounds of Voronoi cells,
    :func:`_greedy_tjoin`: memory and time near linear in the mesh size, whatever the number of frustrated
    faces -- near-identity meshes, whose tiny rotations have nearly arbitrary axes, have thousands).
    sigma : (e,) in {-1, 0, 1} for ``dual.edges``; seed : the greedy matching's random tie-breaks.
    Returns signs (n,) int8 (+1 at root).
    """
    from scipy.sparse.csgraph import dijkstra

    ef = dual.edge_faces
    nd = dual.n_dual
    neg = (sigma < 0).astype(np.int64)
    par = np.bincount(ef[:, 0], weights=neg, minlength=nd) + np.bincount(ef[:, 1], weights=neg, minlength=nd)
    term = np.flatnonzero(np.rint(par).astype(np.int64) % 2 == 1)
    u_set = np.zeros(len(sigma), bool)
    if len(term):
        # a tiny cost on free edges keeps them in the sparse graph; it cannot change the integer optimum
        w = np.where(sigma == 0, 1e-9, 1.0)
        g = sp.csr_matrix((np.r_[w, w], (np.r_[ef[:, 0], ef[:, 1]], np.r_[ef[:, 1], ef[:, 0]])), shape=(nd, nd))
        if matching == "exact":
            import networkx as nx

            dist, pred = dijkstra(g, directed=False, indices=term, return_predecessors=True)
            sub = dist[:, term]
            ti, tj = np.triu_indices(len(term), 1)
            kg = nx.Graph()
            kg.add_weighted_edges_from(zip(ti.tolist(), tj.tolist(), (-np.rint(sub[ti, tj] * 1e6)).tolist()))
            pairs = list(nx.max_weight_matching(kg, maxcardinality=True))
            rows = np.arange(len(term))
        else:
            _greedy_tjoin(g, term, ef, nd, u_set, seed)
            pairs = []
        key = np.minimum(ef[:, 0], ef[:, 1]) * nd + np.maximum(ef[:, 0], ef[:, 1])
        korder = np.argsort(key)
        for a, b in pairs:  # walk each matched path back through the predecessor tree of row a
            path = []
            v = term[b]
            while v != term[a]:
                pv = pred[rows[a], v]
                path.append(min(pv, v) * nd + max(pv, v))
                v = pv
            idx = korder[np.searchsorted(key[korder], np.array(path, dtype=np.int64))]
            u_set[idx] ^= True
    want = np.where(u_set, -1.0, 1.0) * sigma                       # s_i s_j wanted on constrained edges
    con = np.flatnonzero(sigma != 0)
    tree = con[_spanning_tree(n, dual.edges[con], np.ones(len(con)))]
    total = _path_sums(n, dual.edges[tree], (want[tree] < 0).astype(np.float64), root)
    return np.where(np.rint(np.abs(total)).astype(np.int64) % 2 == 1, -1, 1).astype(np.int8)


def consistent_rotations(
    axis: np.ndarray,
    theta: np.ndarray,
    edges: np.ndarray,
    anchor: str | int = "min-norm",
    improve: bool = True,
    root: int = 0,
    dual: DualGraph | None = None,
    restarts: int = 3,
) -> ConsistentRotations:
    """Consistent rotation logs of one mesh by the fast graph method.

    axis : (n, 3) float64 principal unit axes (0 where theta == 0); theta : (n,) float64 in [0, pi];
    edges : (e, 2) int64 undirected mesh edges.
    anchor : ``"min-norm"`` (default) shifts all angles by the 2 pi multiple that minimises sum |r_i|^2;
    an int ``v`` makes vertex ``v`` keep its principal log (the ACAP C++ convention with v = 0).
    dual : the mesh's :class:`DualGraph`; on a genus-0 mesh the signs from a greedy T-join (plus local
    improvement) are also tried and the best kept; ``restarts`` greedy T-joins with different random
    tie-breaks (they differ by a few edges; three reach the exact optimum on posed anny bodies, see
    ``benchmarks/bench_acap.py``).
    """
    axis = np.asarray(axis, np.float64)
    theta = np.asarray(theta, np.float64)
    edges = np.asarray(edges, np.int64)
    n = len(theta)
    sigma = axis_edge_signs(axis, edges)
    signs = propagate_signs(axis, edges, root)
    if improve:
        signs = improve_signs(signs, sigma, edges, n)
        best = axis_objective(signs, sigma, edges)
        for seed in range(restarts if dual is not None and dual.planar else 0):
            if best == 0:
                break
            alt = improve_signs(tjoin_signs(sigma, dual, root, n, "greedy", seed), sigma, edges, n)
            cost = axis_objective(alt, sigma, edges)
            if cost < best:
                signs, best = alt, cost
    phi = np.where(signs > 0, theta, TWO_PI - theta)
    turns = propagate_turns(phi, edges, root)
    if improve:
        turns = improve_turns(phi, turns, edges, n)
    signs, turns = apply_anchor(axis, theta, signs, turns, anchor)
    r, psi = logs_from(axis, theta, signs, turns)
    return ConsistentRotations(r, signs, turns, axis_objective(signs, sigma, edges), turn_objective(psi, edges))


def apply_anchor(axis, theta, signs, turns, anchor) -> tuple[np.ndarray, np.ndarray]:
    """Fix the global 2 pi shift (see :func:`consistent_rotations`); returns (signs, turns)."""
    phi = np.where(signs > 0, theta, TWO_PI - theta)
    psi = phi + TWO_PI * turns
    if anchor == "min-norm":
        c = int(np.rint(-psi.mean() / TWO_PI))
    else:
        v = int(anchor)
        # the principal log of v is s_v a_v psi_v with psi_v = theta_v (s=+1) or -theta_v (s=-1)
        target = theta[v] if signs[v] > 0 else -theta[v]
        c = int(np.rint((target - psi[v]) / TWO_PI))
    return signs, turns + c
