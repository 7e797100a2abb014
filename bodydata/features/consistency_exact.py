"""Exact solvers of ACAP's two rotation-consistency programs (planar T-join, HiGHS MIP), to measure the fast method's gap.

* Axis signs on a genus-0 mesh (closed or with holes; body meshes are): exactly, in polynomial time, as a
  minimum T-join of the dual graph (:func:`bodydata.features.consistency.tjoin_signs` with an exact
  minimum-weight perfect matching, networkx blossom). Optimal, gap 0; 0.02-0.3 s per mesh here.
* Axis signs otherwise: a MIP with HiGHS through ``scipy.optimize.milp`` (already a dependency; no licence,
  no extra package) with a time limit; binary ``x_i`` (flip relative to the fast solution) and one variable
  ``y_e`` per edge equal to its disagreement; the returned gap is the one HiGHS proves (0 = optimal).
* Integer turns: integer changes ``dk_i`` relative to the fast solution, bounded |dk_i| <= 10 as in the
  ACAP code and |dk_i - dk_j| <= ``max_edge_change`` per edge; each edge cost ``(d_e + 2 pi (dk_i - dk_j))^2``
  is convex in the integer difference, so its piecewise-linear interpolation between integers (an epigraph
  of 2 x max_edge_change cuts) equals it at every feasible point: the MIP is exact within those bounds
  (and its LP relaxation, a convex-cost network-flow dual, is integral, so HiGHS closes it at the root).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from bodydata.features.consistency import (
    TWO_PI,
    DualGraph,
    apply_anchor,
    axis_edge_signs,
    axis_objective,
    consistent_rotations,
    logs_from,
    tjoin_signs,
    turn_objective,
)

__all__ = ["ExactResult", "solve_axis_signs", "solve_turns", "exact_consistent_rotations"]


@dataclass
class ExactResult:
    """Exact consistency of one mesh: logs ``r (n, 3)``, ``signs``, ``turns``, the costs, and per program the
    proven relative gap (0 = optimal), the dual bound, the status message and the seconds taken."""

    r: np.ndarray
    signs: np.ndarray
    turns: np.ndarray
    axis_cost: float
    turn_cost: float
    axis_gap: float
    turn_gap: float
    axis_bound: float
    turn_bound: float
    axis_status: str
    turn_status: str
    seconds: float


def solve_axis_signs(signs0: np.ndarray, sigma: np.ndarray, edges: np.ndarray, root: int = 0,
                     time_limit: float = 60.0) -> tuple[np.ndarray, float, float, str]:
    """Minimum number of disagreeing edges. Returns (signs (n,) int8, proven gap, dual bound, status)."""
    n = len(signs0)
    act = np.flatnonzero(sigma != 0)
    i, j = edges[act, 0], edges[act, 1]
    sp_ = signs0[i] * signs0[j] * sigma[act]          # current agreement of each active edge
    m = len(act)
    nv = n + m
    rows, cols, vals, lo, hi = [], [], [], [], []
    r = 0
    pos = np.flatnonzero(sp_ > 0)
    neg = np.flatnonzero(sp_ < 0)
    # positive edge: y >= x_i - x_j and y >= x_j - x_i   (y - x_i + x_j >= 0, y + x_i - x_j >= 0)
    for si in (1.0, -1.0):
        k = len(pos)
        rr = r + np.arange(k)
        rows += [rr, rr, rr]
        cols += [n + pos, i[pos], j[pos]]
        vals += [np.ones(k), np.full(k, -si), np.full(k, si)]
        lo.append(np.zeros(k)); hi.append(np.full(k, np.inf))
        r += k
    # negative edge (currently disagreeing): y >= 1 - x_i - x_j and y >= x_i + x_j - 1
    k = len(neg)
    rr = r + np.arange(k)
    rows += [rr, rr, rr]; cols += [n + neg, i[neg], j[neg]]; vals += [np.ones(k), np.ones(k), np.ones(k)]
    lo.append(np.ones(k)); hi.append(np.full(k, np.inf)); r += k
    rr = r + np.arange(k)
    rows += [rr, rr, rr]; cols += [n + neg, i[neg], j[neg]]; vals += [np.ones(k), -np.ones(k), -np.ones(k)]
    lo.append(np.full(k, -1.0)); hi.append(np.full(k, np.inf)); r += k
    a = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, nv))
    c = np.r_[np.zeros(n), np.ones(m)]
    lb = np.zeros(nv)
    ub = np.ones(nv)
    ub[root] = 0.0
    integ = np.r_[np.ones(n), np.zeros(m)]
    res = milp(c, constraints=LinearConstraint(a, np.concatenate(lo), np.concatenate(hi)), bounds=Bounds(lb, ub),
               integrality=integ, options={"time_limit": float(time_limit), "disp": False})
    if res.x is None:
        return signs0.copy(), np.inf, float(getattr(res, "mip_dual_bound", np.nan) or 0.0), res.message
    flip = np.rint(res.x[:n]) > 0.5
    signs = np.where(flip, -signs0, signs0).astype(np.int8)
    gap = float(res.mip_gap) if getattr(res, "mip_gap", None) is not None else 0.0
    bound = float(res.mip_dual_bound) if getattr(res, "mip_dual_bound", None) is not None else float(res.fun)
    return signs, gap, bound, res.message


def solve_turns(psi0: np.ndarray, edges: np.ndarray, root: int = 0, time_limit: float = 60.0,
                max_turn: int = 10, max_edge_change: int = 3) -> tuple[np.ndarray, float, float, str]:
    """Minimise sum_edges (psi_i - psi_j)^2 over integer turn changes. Returns (dk (n,) int64, gap, bound, status)."""
    n = len(psi0)
    i, j = edges[:, 0], edges[:, 1]
    d = psi0[i] - psi0[j]
    e = len(d)
    ms = np.arange(-max_edge_change, max_edge_change)                 # segments [m, m+1]
    nv = n + e
    # t_e >= f(m) + (f(m+1) - f(m)) (dk_i - dk_j - m)  <=>  t_e - s (dk_i - dk_j) >= f(m) - s m
    fm = (d[:, None] + TWO_PI * ms[None, :]) ** 2
    fm1 = (d[:, None] + TWO_PI * (ms[None, :] + 1)) ** 2
    slope = fm1 - fm
    rhs = fm - slope * ms[None, :]
    k = len(ms)
    rows = np.repeat(np.arange(e * k), 3)
    cols = np.stack([np.repeat(n + np.arange(e), k), np.repeat(i, k), np.repeat(j, k)], axis=1).ravel()
    vals = np.stack([np.ones(e * k), -slope.ravel(), slope.ravel()], axis=1).ravel()
    a1 = sp.csr_matrix((vals, (rows, cols)), shape=(e * k, nv))
    # |dk_i - dk_j| <= max_edge_change
    a2 = sp.csr_matrix((np.r_[np.ones(e), -np.ones(e)], (np.r_[np.arange(e), np.arange(e)], np.r_[i, j])), shape=(e, nv))
    cons = [LinearConstraint(a1, rhs.ravel(), np.inf),
            LinearConstraint(a2, -max_edge_change, max_edge_change)]
    c = np.r_[np.zeros(n), np.ones(e)]
    lb = np.r_[np.full(n, -float(max_turn)), np.zeros(e)]
    ub = np.r_[np.full(n, float(max_turn)), np.full(e, np.inf)]
    lb[root] = ub[root] = 0.0
    integ = np.r_[np.ones(n), np.zeros(e)]
    res = milp(c, constraints=cons, bounds=Bounds(lb, ub), integrality=integ,
               options={"time_limit": float(time_limit), "disp": False})
    if res.x is None:
        return np.zeros(n, np.int64), np.inf, 0.0, res.message
    dk = np.rint(res.x[:n]).astype(np.int64)
    gap = float(res.mip_gap) if getattr(res, "mip_gap", None) is not None else 0.0
    bound = float(res.mip_dual_bound) if getattr(res, "mip_dual_bound", None) is not None else float(res.fun)
    return dk, gap, bound, res.message


def exact_consistent_rotations(axis: np.ndarray, theta: np.ndarray, edges: np.ndarray, faces: np.ndarray | None = None,
                               anchor: str | int = "min-norm", time_limit: float = 60.0, root: int = 0,
                               dual_graph: DualGraph | None = None) -> ExactResult:
    """Consistent logs with both programs solved exactly.

    axis (n, 3), theta (n,), edges (e, 2) as in :func:`consistency.consistent_rotations`; with ``faces (m, 3)`` of
    a genus-0 mesh the axis program is solved by the planar T-join (optimal), otherwise by HiGHS within
    ``time_limit`` seconds; the turn program by HiGHS. Starts from the fast method's solution, so the result is
    never worse than it.
    """
    import time

    t0 = time.perf_counter()
    axis = np.asarray(axis, np.float64)
    theta = np.asarray(theta, np.float64)
    edges = np.asarray(edges, np.int64)
    n = len(theta)
    dual = None
    if faces is not None:
        dual = dual_graph if dual_graph is not None else DualGraph.from_faces(n, faces)
        if not (dual.planar and np.array_equal(dual.edges, edges)):
            dual = None
    fast = consistent_rotations(axis, theta, edges, anchor=root, dual=dual)
    sigma = axis_edge_signs(axis, edges)
    if dual is not None:
        signs = tjoin_signs(sigma, dual, root, n, "exact")
        agap, abound, astat = 0.0, float(axis_objective(signs, sigma, edges)), "optimal (planar T-join)"
    else:
        signs, agap, abound, astat = solve_axis_signs(fast.signs, sigma, edges, root, time_limit)
    if axis_objective(signs, sigma, edges) > fast.axis_cost:    # a time-limited MIP can return worse
        signs = fast.signs
    phi = np.where(signs > 0, theta, TWO_PI - theta)
    if np.array_equal(signs, fast.signs):
        k0 = fast.turns
    else:
        from bodydata.features.consistency import improve_turns, propagate_turns

        k0 = improve_turns(phi, propagate_turns(phi, edges, root), edges, n)
    dk, tgap, tbound, tstat = solve_turns(phi + TWO_PI * k0, edges, root, time_limit)
    turns = k0 + dk
    if turn_objective(phi + TWO_PI * turns, edges) > turn_objective(phi + TWO_PI * k0, edges):
        turns = k0
    signs, turns = apply_anchor(axis, theta, signs, turns, anchor)
    r, psi = logs_from(axis, theta, signs, turns)
    return ExactResult(r, signs, turns, axis_objective(signs, sigma, edges), turn_objective(psi, edges),
                       agap, tgap, abound, tbound, str(astat), str(tstat), time.perf_counter() - t0)
