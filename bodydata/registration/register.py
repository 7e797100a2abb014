"""Non-rigid registration of the template onto a target mesh (paper Eq. 14), coarse to fine, in torch (CPU or CUDA).

Minimised energy, over the global similarity (R, s, t), the prior coefficients w and the free vertices p::

    E = E_prior / n + lambda_icp (E_icp + rho E_back) + lambda_lan E_lan + lambda_l1 mean_k |w_k| + E_guide

* ``E_prior`` = sum over directed template edges of ``c_ij |(p_i - p_j) - T_i(w)(q_i - q_j)|^2``
  (:mod:`bodydata.registration.deform`);
* ``E_icp`` = mean over template vertices of ``h_i (n_t . (x_i - v_t))^2``, ``x = s R p + t``, ``v_t`` the gated
  closest target vertex and ``n_t`` its normal (:mod:`bodydata.registration.icp`); ``h_i`` = ``hand_weight``
  on the template's hand parts (the paper's template fits hands poorly and excludes fingers from its ICP;
  here ``hand_weight`` lets hands count less; default 1: on FAUST, 0.2 left the spread fingers and
  thumb unfitted, tr_reg_001 point-to-mesh 3.2 mm against 2.2 mm with 1), 0 on the template's cavity
  vertices (mouth, tongue: ``Template.surface_mask``; no scan shows them), else 1;
* ``E_back`` (not in the paper) = mean over target vertices of the squared distance to their gated closest
  template (surface) vertex: it covers target regions that no template vertex is near yet (a limb in
  a different pose, the far side of the crotch), which the one-sided E_icp cannot see. Coarse stage:
  point-to-point, weight ``reverse_weight`` (default 0); fine stage: point-to-plane along the target
  normal, weight ``fine_reverse_weight`` (default 1): point-to-point there dragged vertices tangentially
  (anny bodies, MED 11.1 mm against 2.4 mm without), the plane version cannot;
* ``E_guide`` (not in the paper; only with a guide, i.e. anny fitted to the target by the body-model start
  for an anny template) = mean over template vertices of ``|x_i - g_i|^2``, weight ``guide_weight`` (coarse)
  times ``guide_scale`` per fine round: the fitted body's articulated correspondence, limb twist included,
  holds vertices in place along round limbs where the surface terms let them slide, then fades;
* ``E_lan`` = mean over shared landmarks of ``|x_l - v_l(i)|^2``, minus ``ignore_landmarks`` (default
  the crotch: a saddle whose lowest point is ill-defined front to back; anny's and SMPL's rules land
  70 mm apart on the same FAUST body).

Differences from the paper, and why: every squared length is measured in the template's units (target
lengths divided by the landmark similarity's scale s0, fixed: dividing by the current s would reward a
growing s) and in millimetres (``unit`` = 1e-3 template metres), and the sums are means (per vertex, per landmark,
per component), so lambda_icp, lambda_lan, lambda_l1 keep the paper's defaults (5.0, 1.0, 0.3) with a meaning
independent of mesh size and units; w is in training standard deviations (:mod:`bodydata.registration.prior`),
and |w| is smoothed (sqrt(w^2 + 1e-6)) for L-BFGS.

Schedule: (0) similarity from the landmarks (Umeyama); (1) "coarse": w, R, s, t with p = the ACAP
reconstruction of f(w) (the exact minimiser of E_prior for that w, differentiable through the prefactored
solve), gating distances ``coarse_dists``; (2) "fine": w, R, s, t and free p, gating ``fine_dists``, one
exact sparse solve for p per round followed by L-BFGS on w. Each gating distance is one ICP round:
closest points are found once, then the solves. In the fine rounds the landmark weight is multiplied by
``fine_landmark_scale`` (1, 0.1, 0.01, ...: landmarks place the body, then the surface decides; landmarks
of two body models agree only to 1-2 cm) and the data weight by ``fine_icp_scale`` (1, 1, 1, 3, 10, 30:
the last rounds let the surface follow the scan's detail that the prior does not span). A schedule
shorter than ``fine_dists`` repeats its last value. FAUST tr_reg_000 -> anny, point-to-mesh both ways:
1.98 / 2.67 mm with the paper's fixed weights, 0.69 / 0.60 mm with this schedule.

Batches (:meth:`Registrar.register_batch`; :meth:`Registrar.register` is a batch of one): the B bodies' energies
are independent, so every L-BFGS evaluation computes all of them at once (transforms (B, n, 3, 3), one ACAP
solve with 3B right-hand sides, all targets' vertices stacked) while each body keeps its own L-BFGS (state,
line search, stopping test: :meth:`Registrar._lbfgs_lockstep`). One L-BFGS over the summed energies was tried
first and cost accuracy (a shared line search and mixed curvature pairs: one anny-lite body 22 mm MED against
14 mm alone at the same iteration caps). A batched body differs from its solo registration only by rounding,
which L-BFGS amplifies: on the 12,272-vertex template up to 0.8 mm MED per body, the same size as moving the
input by 1e-12 m (1.1 mm); ``benchmarks/bench_convert_batch.py``. KD-tree searches and the fine stage's
free-vertex solves stay per body.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from bodydata.manifest.status import STATUS_DONE, STATUS_FAILED
from bodydata.registration.deform import PriorDeformer
from bodydata.registration.icp import Correspondences, TargetMesh, closest, point_to_plane, point_to_point

if TYPE_CHECKING:
    from bodydata.registration.prior import SparsePrior
    from bodydata.templates.template import Template

# one target of a batch: vertices (m, 3) float64, faces (k, 3) int64, landmarks {name: target vertex id}
Target = tuple[np.ndarray, np.ndarray, Mapping[str, int]]

__all__ = ["HAND_PARTS", "LandmarkStart", "Registrar", "RegistrationConfig", "RegistrationResult", "landmark_start",
           "similarity_from_points"]

HAND_PARTS = ("hand_L", "hand_R")


@dataclass
class RegistrationConfig:
    """Weights and schedule; distances in template metres, angles in degrees."""

    lambda_icp: float = 5.0
    lambda_lan: float = 1.0
    lambda_l1: float = 0.3
    reverse_weight: float = 0.0
    fine_reverse_weight: float = 1.0
    hand_weight: float = 1.0
    unit: float = 1e-3
    max_angle: float = 60.0
    coarse_dists: tuple = (0.10, 0.05, 0.03, 0.02)
    fine_dists: tuple = (0.03, 0.02, 0.01, 0.01, 0.01, 0.01)
    coarse_iters: int = 50
    fine_iters: int = 30
    fine_landmark_scale: tuple = (1.0, 0.1, 0.01)
    fine_icp_scale: tuple = (1.0, 1.0, 1.0, 3.0, 10.0, 30.0)
    ignore_landmarks: tuple = ("crotch",)
    guide_weight: float = 1.0
    guide_scale: tuple = (1.0, 0.3, 0.1, 0.03, 0.0)
    min_overlap: float = 0.3
    max_landmark_error: float = 0.08
    device: str | None = None


@dataclass
class RegistrationResult:
    """vertices : (n, 3) float64 converted mesh in the target's frame and units (template connectivity);
    template_frame : (n, 3) float64 p; w : (K,); scale, rotation (3, 3), translation (3,) with
    ``vertices = scale p R^T + translation``; landmark_error : mean landmark distance (target units);
    overlap : fraction of template vertices with a gated correspondence at the end; iterations (L-BFGS
    iterations, all stages); seconds (in a batch: the body's own preparation + 1/B of each batched optimisation
    it took part in); status 'done' | 'failed'; reason; history of (stage, gating distance, energy, seconds since
    the optimisation started)."""

    vertices: np.ndarray
    template_frame: np.ndarray
    w: np.ndarray
    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    landmark_error: float
    overlap: float
    iterations: int
    seconds: float
    status: str = STATUS_DONE
    reason: str = ""
    history: list = field(default_factory=list)


def similarity_from_points(src: np.ndarray, dst: np.ndarray,
                           scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """s, R (3, 3), t (3,) minimising sum |s R src_k + t - dst_k|^2 (Umeyama; ``scale=False``: rigid, s = 1).
    src, dst : (L, 3) float64, L >= 3. The registration's tuple form of :func:`bodydata.mesh.alignment.align`."""
    from bodydata.mesh.alignment import align

    a = align(src, dst, scale=scale)
    return float(a.scale), a.rotation, a.translation


@dataclass
class LandmarkStart:
    """Step (0) of a registration: the landmark pairs (template ids tl (L,) int64, target ids sl (L,) int64) and the
    similarity (s0, r0 (3, 3), t0 (3,)) that carries the reference body's landmarks onto the target's."""

    tl: np.ndarray
    sl: np.ndarray
    s0: float
    r0: np.ndarray
    t0: np.ndarray


def landmark_start(template_landmarks: Mapping[str, int], reference: np.ndarray, target: np.ndarray,
                   landmarks: Mapping[str, int], ignore: Sequence[str] = ()) -> LandmarkStart | str:
    """The landmark similarity start shared by every registrar: the landmarks named both by the template
    (``template_landmarks`` {name: template vertex id}, in its order) and by the target (``landmarks`` {name: target
    vertex id}) minus ``ignore``, and the Umeyama similarity of ``reference`` (n, 3) float64 (the template's vertices,
    or a learned prior's mean body) onto ``target`` (m, 3) float64 at them. Returns the reason as a string when
    fewer than 4 landmarks are shared (the caller's failed row)."""
    names = [k for k in template_landmarks if k in landmarks and k not in ignore]
    if len(names) < 4:
        return f"no landmarks: {len(names)} shared with the template (need >= 4)"
    tl = np.array([template_landmarks[k] for k in names], np.int64)
    sl = np.array([landmarks[k] for k in names], np.int64)
    s0, r0, t0 = similarity_from_points(np.asarray(reference, np.float64)[tl], np.asarray(target, np.float64)[sl])
    return LandmarkStart(tl, sl, s0, r0, t0)


@dataclass
class _Body:
    """One target ready for the joint optimisation: its position in the batch, mesh + KD-tree, landmark pairs
    (template ids tl (L,) int64, target ids sl (L,) int64) and the landmark similarity (s0, r0 (3, 3), t0 (3,))."""

    index: int
    target: TargetMesh
    tl: np.ndarray
    sl: np.ndarray
    s0: float
    r0: np.ndarray
    t0: np.ndarray
    guide: np.ndarray | None = None


@dataclass
class _Batch:
    """B prepared bodies stacked for the joint optimisation (torch tensors on the registrar's device, float64).

    tv, tn : (M, 3) every target's vertices and normals in one array (body b's vertex k is row off[b] + k);
    s0t (B,), r0t (B, 3, 3), t0t (B, 3) : the landmark similarities; leaves : per body [w (1, K), omega (1, 3)
    rotation, log s (1, 1), tau (1, 3) translation in units of 0.1 s0 (10 cm of template): comparable in size to w,
    omega and log s for L-BFGS], each body with its own L-BFGS; lb, l_tpl, l_tgt, l_w : landmark pairs of all
    bodies, flat (body, template vertex, stacked target row, weight 1 / (L_b u2_b)); u2 (B,) = (s0 unit)^2: lengths
    in fixed units (dividing by the current s would reward a growing s); iters, history, overlap : per body."""

    bodies: list[_Body]
    m_t: np.ndarray
    off: np.ndarray
    s0: np.ndarray
    u2: np.ndarray
    tv: Any
    tn: Any
    s0t: Any
    r0t: Any
    t0t: Any
    leaves: list
    lb: Any
    l_tpl: Any
    l_tgt: Any
    l_w: Any
    iters: np.ndarray
    history: list
    overlap: np.ndarray
    t_start: float
    guide: Any = None
    guide_w: Any = None

    @classmethod
    def stack(cls, bodies: list[_Body], K: int, device, unit: float) -> _Batch:
        import torch

        B = len(bodies)
        f64 = {"dtype": torch.float64, "device": device}
        m_t = np.array([len(b.target.vertices) for b in bodies])
        off = np.r_[0, np.cumsum(m_t)[:-1]]
        s0 = np.array([b.s0 for b in bodies])
        u2 = (s0 * unit) ** 2
        return cls(
            bodies=list(bodies), m_t=m_t, off=off, s0=s0, u2=u2,
            tv=torch.as_tensor(np.concatenate([b.target.vertices for b in bodies]), **f64),
            tn=torch.as_tensor(np.concatenate([b.target.normals for b in bodies]), **f64),
            s0t=torch.as_tensor(s0, **f64),
            r0t=torch.as_tensor(np.stack([b.r0 for b in bodies]), **f64),
            t0t=torch.as_tensor(np.stack([b.t0 for b in bodies]), **f64),
            leaves=[[torch.zeros(1, d, **f64, requires_grad=True) for d in (K, 3, 1, 3)] for _ in range(B)],
            lb=torch.as_tensor(np.concatenate([np.full(len(b.tl), i) for i, b in enumerate(bodies)]), device=device),
            l_tpl=torch.as_tensor(np.concatenate([b.tl for b in bodies]), device=device),
            l_tgt=torch.as_tensor(np.concatenate([b.sl + o for b, o in zip(bodies, off)]), device=device),
            l_w=torch.as_tensor(np.concatenate([np.full(len(b.tl), 1.0 / (len(b.tl) * u2[i]))
                                                for i, b in enumerate(bodies)]), **f64),
            iters=np.zeros(B, np.int64), history=[[] for _ in range(B)], overlap=np.zeros(B),
            t_start=time.perf_counter())

    def set_guides(self, n: int, weight: float) -> None:
        """guide (B, n, 3) tensor of the bodies' guides (zeros where none) and guide_w (B,) their weights
        ``weight / (n u2)`` (0 where none): the mean squared distance to the guide in fixed units."""
        import torch

        f64 = {"dtype": torch.float64, "device": self.tv.device}
        g = np.zeros((len(self.bodies), n, 3))
        w = np.zeros(len(self.bodies))
        for i, b in enumerate(self.bodies):
            if b.guide is not None:
                g[i], w[i] = b.guide, weight / (n * self.u2[i])
        self.guide, self.guide_w = torch.as_tensor(g, **f64), torch.as_tensor(w, **f64)

    def stacked(self, j: int):
        """Leaf ``j`` of every body stacked: (B, d) tensor."""
        import torch

        return torch.cat([body_leaves[j] for body_leaves in self.leaves])

    def pose(self, p):
        """p (B, n, 3) -> x (B, n, 3) = s p R^T + t, s (B, 1), R (B, 3, 3)."""
        import torch

        from bodydata.features.polar import rotation_exp_torch

        rot = rotation_exp_torch(self.stacked(1)) @ self.r0t
        s = self.s0t[:, None] * torch.exp(self.stacked(2))
        tt = self.t0t + 0.1 * self.s0t[:, None] * self.stacked(3)
        return (s[:, :, None] * p) @ rot.transpose(1, 2) + tt[:, None, :], s, rot

    def per_body(self, values, body):
        """Sum of ``values`` (P,) per body, by ``body`` (P,) int64: (B,)."""
        import torch

        return torch.zeros(len(self.bodies), dtype=torch.float64, device=values.device).index_add(0, body, values)


class _Diverged(RuntimeError):
    """The bodies ``which`` (positions in the optimised batch) broke down; the message says how."""

    def __init__(self, which: list[int], reason: str):
        super().__init__(reason)
        self.which = list(which)


class Registrar:
    """Registers targets onto one template with one prior (the prefactored solve and the basis are reused).

    template : a :class:`bodydata.templates.template.Template` (vertices, faces, part_labels, part_names, landmarks);
    prior : :class:`bodydata.registration.prior.SparsePrior` of that template.
    """

    def __init__(self, template: Template, prior: SparsePrior, config: RegistrationConfig | None = None):
        import torch

        self.config = config or RegistrationConfig()
        self.template = template
        self.deformer = PriorDeformer(prior, template.vertices, template.faces, self.config.device,
                                      weighting=prior.weighting)
        self.device = self.deformer.device
        self.torch = torch
        n = template.n_vertices
        hands = np.isin(np.asarray(template.part_labels),
                        [list(template.part_names).index(h) for h in HAND_PARTS if h in template.part_names])
        # vertices no scanner sees (mouth cavity) get no data term: the prior carries them
        self.surface = np.asarray(template.surface_mask, bool)
        self.surface_ids = np.flatnonzero(self.surface)
        self.vertex_weight = np.where(hands, self.config.hand_weight, 1.0) * self.surface
        self.n = n

    def register(self, vertices: np.ndarray, faces: np.ndarray, landmarks: Mapping[str, int]) -> RegistrationResult:
        """vertices : (m, 3) float64 target; faces : (k, 3) int64; landmarks : {name: target vertex id}.

        Never raises for a bad fit: failures come back with status 'failed' and a reason. (A batch of one.)"""
        return self.register_batch([(vertices, faces, landmarks)])[0]

    def register_batch(self, targets: Sequence[Target],
                       guides: Sequence[np.ndarray | None] | None = None) -> list[RegistrationResult]:
        """Register several targets in lockstep; targets : sequence of (vertices (m_b, 3) float64, faces (k_b, 3)
        int64, landmarks {name: vertex id}), sizes may differ. Returns one result per target, in order.

        The bodies' energies are independent: every L-BFGS round (coarse stage, fine-stage w-step) evaluates
        all B of them at once (transforms (B, n, 3, 3), one ACAP solve with 3B right-hand sides) while each body
        keeps its own L-BFGS state (:meth:`_lbfgs_lockstep`), so each result equals registering that body alone
        up to floating-point rounding. Closest points and the fine stage's free-vertex solve (own sparse
        factorisation) stay per body. A body that cannot start (too few landmarks, a bad mesh) or whose energy
        or solve breaks down comes back 'failed' with its reason and the others go on (the batch is re-run
        without it). ``seconds`` = the body's own preparation time + its share (1/B) of every batched
        optimisation it took part in; ``iterations`` and ``history`` are the body's own."""
        results: list[RegistrationResult | None] = [None] * len(targets)
        bodies, prep_s = [], []
        for i, (vertices, faces, landmarks) in enumerate(targets):
            t0 = time.perf_counter()
            try:
                body = self._prepare(i, vertices, faces, landmarks)
                if guides is not None and guides[i] is not None and not isinstance(body, str):
                    g = np.asarray(guides[i], np.float64)
                    if g.shape != (self.n, 3) or not np.all(np.isfinite(g)):
                        raise ValueError(f"guide of shape {g.shape}, expected ({self.n}, 3) finite")
                    body.guide = g
            except (ValueError, IndexError, np.linalg.LinAlgError) as exc:  # a bad input = a failed row
                body = f"bad target: {type(exc).__name__}: {exc}"
            if isinstance(body, str):
                results[i] = self._failed(body, time.perf_counter() - t0)
            else:
                bodies.append(body)
                prep_s.append(time.perf_counter() - t0)
        if not bodies:
            return results
        spent = dict.fromkeys(range(len(bodies)), 0.0)  # optimisation seconds charged to each body
        pending = list(range(len(bodies)))
        while pending:
            t0 = time.perf_counter()
            try:
                outs = self._optimise([bodies[j] for j in pending])
            except _Diverged as exc:  # drop the named bodies, run the rest again (their results do not change)
                for j in pending:
                    spent[j] += (time.perf_counter() - t0) / len(pending)
                gone = {pending[k] for k in exc.which}
                for j in gone:
                    results[bodies[j].index] = self._failed(f"diverged: {exc}", prep_s[j] + spent[j])
                pending = [j for j in pending if j not in gone]
                continue
            except (RuntimeError, ValueError, np.linalg.LinAlgError) as exc:  # numerical breakdown = a failed row
                for j in pending:
                    spent[j] += (time.perf_counter() - t0) / len(pending)
                if len(pending) == 1:
                    results[bodies[pending[0]].index] = self._failed(f"diverged: {exc}",
                                                                      prep_s[pending[0]] + spent[pending[0]])
                    break
                # an unattributed breakdown: each body alone, so that the others do not fail with it
                outs = [self.register_batch([targets[bodies[j].index]],
                                            None if guides is None else [guides[bodies[j].index]])[0]
                        for j in pending]
            else:
                for j in pending:
                    spent[j] += (time.perf_counter() - t0) / len(pending)
            for j, res in zip(pending, outs):
                res.seconds += prep_s[j] + spent[j]
                results[bodies[j].index] = res
            break
        return results

    # ------------------------------------------------------------------ internals
    def _failed(self, reason: str, seconds: float) -> RegistrationResult:
        nan = np.full((self.n, 3), np.nan)
        return RegistrationResult(nan, nan.copy(), np.zeros(self.deformer.K), np.nan, np.eye(3), np.zeros(3), np.nan,
                                  0.0, 0, seconds, STATUS_FAILED, reason)

    def _prepare(self, index: int, vertices: np.ndarray, faces: np.ndarray,
                 landmarks: Mapping[str, int]) -> _Body | str:
        """One target's KD-tree, landmark pairs and landmark similarity, or the reason it cannot be registered."""
        start = landmark_start(self.template.landmarks, self.template.vertices, vertices, landmarks,
                               self.config.ignore_landmarks)
        if isinstance(start, str):
            return start
        return _Body(index, TargetMesh(vertices, faces), start.tl, start.sl, start.s0, start.r0, start.t0)

    def _lbfgs_lockstep(self, groups: list, energy: Callable[[], Any], max_iter: int) -> tuple[np.ndarray, np.ndarray]:
        """Minimise every body's energy with its own L-BFGS (torch's, strong Wolfe line search) over its own
        leaf tensors ``groups[b]``, evaluating all bodies at once: ``energy()`` -> (B,) tensor of the per-body
        energies at the current leaves. With B > 1 the optimisers run in threads that do nothing but wait for
        the shared evaluation, so each body takes the path it would take alone (its own curvature pairs, line
        search and stopping test) while the expensive part is batched; a body that stops early keeps being
        evaluated (its energy is not used) until the last one stops.

        Returns (per-body energies at the start (B,) float64, L-BFGS iterations (B,) int64); raises
        :class:`_Diverged` naming the bodies whose energy is not finite."""
        import threading

        torch = self.torch
        B = len(groups)
        opts = [torch.optim.LBFGS(g, lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12) for g in groups]
        first = np.full(B, np.nan)

        def evaluate() -> np.ndarray:
            with torch.enable_grad():
                e = energy()
                values = e.detach().cpu().numpy()
                bad = np.flatnonzero(~np.isfinite(values))
                if len(bad):
                    raise _Diverged(bad.tolist(), "non-finite energy")
                e.sum().backward()
            return values

        def iterations() -> np.ndarray:
            return np.array([int(o.state[o._params[0]].get("n_iter", 0)) for o in opts], np.int64)

        if B == 1:
            def closure():
                opts[0].zero_grad()
                value = float(evaluate()[0])
                if np.isnan(first[0]):
                    first[0] = value
                return value

            opts[0].step(closure)
            return first, iterations()

        lock = threading.Condition()
        st = {"active": set(range(B)), "waiting": set(), "generation": 0, "values": None, "error": None}

        class _Abort(Exception):
            pass

        def make_closure(b):
            def closure():
                opts[b].zero_grad()
                with lock:
                    st["waiting"].add(b)
                    gen = st["generation"]
                    lock.notify_all()
                    while st["generation"] == gen and st["error"] is None:
                        lock.wait()
                    if st["error"] is not None:
                        raise _Abort
                    value = float(st["values"][b])
                if np.isnan(first[b]):
                    first[b] = value
                return value
            return closure

        def run(b):
            try:
                opts[b].step(make_closure(b))
            except _Abort:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
                with lock:
                    st["error"] = st["error"] or exc
            finally:
                with lock:
                    st["active"].discard(b)
                    st["waiting"].discard(b)
                    lock.notify_all()

        threads = [threading.Thread(target=run, args=(b,), daemon=True) for b in range(B)]
        for t in threads:
            t.start()
        with lock:
            while True:
                while st["error"] is None and st["active"] and not st["active"] <= st["waiting"]:
                    lock.wait()
                if st["error"] is not None or not st["active"]:
                    break
                try:
                    st["values"] = evaluate()
                except BaseException as exc:  # noqa: BLE001 - stops every optimiser, then re-raised
                    st["error"] = exc
                st["waiting"].clear()
                st["generation"] += 1
                lock.notify_all()
        for t in threads:
            t.join()
        if st["error"] is not None:
            raise st["error"]
        return first, iterations()

    def _correspond(self, target: TargetMesh, xn: np.ndarray, dist: float) -> tuple[Correspondences, Correspondences]:
        """Forward (template -> target) and backward (target -> template) gated closest vertices at ``dist``
        (target units)."""
        from scipy.spatial import cKDTree

        from bodydata.mesh.normals import vertex_normals

        xnrm = vertex_normals(xn, self.template.faces)
        fwd = closest(target.tree, target.vertices, target.normals, xn, xnrm, dist, self.config.max_angle)
        sid = self.surface_ids
        back = closest(cKDTree(xn[sid]), xn[sid], xnrm[sid], target.vertices, target.normals, dist, self.config.max_angle)
        back.index = sid[back.index]
        return fwd, back

    def _optimise(self, bodies: list[_Body]) -> list[RegistrationResult]:
        """The coarse and fine stages for B prepared bodies at once; raises :class:`_Diverged` naming the bodies
        whose energy turned non-finite or whose free-vertex solve failed."""
        batch = _Batch.stack(bodies, self.deformer.K, self.device, self.config.unit)
        batch.set_guides(self.n, self.config.guide_weight)
        self._coarse(batch)
        return self._fine(batch)

    def _coarse_energy(self, batch: _Batch, fb, fv, fi, bb, bv, bi, f_w, b_w):
        """The coarse energy for one round's correspondences: flat (body, template vertex, stacked target row) pairs
        fb/fv/fi (forward) and bb/bv/bi (backward) (int64 tensors), each with its weight f_w / b_w (units and means
        folded in). Returns ``energy() -> (B,)`` at the batch's current leaves."""
        torch = self.torch
        cfg, n = self.config, self.n
        d = self.deformer

        def energy():
            w = batch.stacked(0)
            tr = d.transforms(w)
            p = d.reconstructor.solve(d.rhs(tr))
            x, _, _ = batch.pose(p)
            e_prior = d.prior_energy(p, tr) / (n * cfg.unit ** 2)
            e_icp = batch.per_body(point_to_plane(x[fb, fv], batch.tv[fi], batch.tn[fi], f_w), fb)
            e_back = batch.per_body(point_to_point(x[bb, bv], batch.tv[bi], b_w), bb)
            e_lan = batch.per_body(point_to_point(x[batch.lb, batch.l_tpl], batch.tv[batch.l_tgt], batch.l_w),
                                   batch.lb)
            e_l1 = torch.sqrt(w * w + 1e-6).mean(1)
            e_guide = batch.guide_w * (x - batch.guide).pow(2).sum((1, 2))
            return (e_prior + cfg.lambda_icp * (e_icp + cfg.reverse_weight * e_back)
                    + cfg.lambda_lan * e_lan + cfg.lambda_l1 * e_l1 + e_guide)
        return energy

    def _w_energy(self, batch: _Batch, pt):
        """The fine stage's w-step energy for free vertices pt (B, n, 3) tensor: ``energy() -> (B,)``."""
        torch = self.torch
        cfg, n = self.config, self.n

        def energy():
            w = batch.stacked(0)
            tr = self.deformer.transforms(w)
            return (self.deformer.prior_energy(pt, tr) / (n * cfg.unit ** 2)
                    + cfg.lambda_l1 * torch.sqrt(w * w + 1e-6).mean(1))
        return energy

    def _coarse(self, batch: _Batch) -> None:
        """Stage 1 (coarse): w and the similarity, p = ACAP reconstruction of f(w), one L-BFGS per gating distance."""
        torch = self.torch
        cfg, n, dev, bodies = self.config, self.n, self.device, batch.bodies
        f64 = {"dtype": torch.float64, "device": dev}
        for dist in cfg.coarse_dists:
            with torch.no_grad():
                x = batch.pose(self.deformer.reconstruct(batch.stacked(0)))[0].cpu().numpy()
            fb, fv, fi, bb, bv, bi = ([] for _ in range(6))
            for i, body in enumerate(bodies):
                fwd, back = self._correspond(body.target, x[i], dist * body.s0)
                batch.overlap[i] = float(fwd.valid.mean())
                k = np.flatnonzero(fwd.valid)
                fb.append(np.full(len(k), i)), fv.append(k), fi.append(fwd.index[k] + batch.off[i])
                k = np.flatnonzero(back.valid)
                bb.append(np.full(len(k), i)), bv.append(back.index[k]), bi.append(k + batch.off[i])
            fb, fv, fi, bb, bv, bi = (np.concatenate(a) for a in (fb, fv, fi, bb, bv, bi))
            f_w = torch.as_tensor(self.vertex_weight[fv] / (n * batch.u2[fb]), **f64)
            b_w = torch.as_tensor(self.vertex_weight[bv] / (batch.m_t[bb] * batch.u2[bb]), **f64)
            fb, fv, fi, bb, bv, bi = (torch.as_tensor(a, device=dev) for a in (fb, fv, fi, bb, bv, bi))

            e0, k = self._lbfgs_lockstep(batch.leaves, self._coarse_energy(batch, fb, fv, fi, bb, bv, bi, f_w, b_w),
                                         cfg.coarse_iters)
            batch.iters += k
            for i in range(len(bodies)):
                batch.history[i].append(("coarse", float(dist), float(e0[i]), time.perf_counter() - batch.t_start))

    def _fine(self, batch: _Batch) -> list[RegistrationResult]:
        """Stage 2 (fine): free p (exact linear solve per body and ICP round) alternating with w (L-BFGS); the
        results, each checked (finite, overlap, landmark error)."""
        torch = self.torch
        from bodydata.features.polar import rotation_exp_torch

        cfg, bodies = self.config, batch.bodies
        f64 = {"dtype": torch.float64, "device": self.device}
        with torch.no_grad():
            p = list(self.deformer.reconstruct(batch.stacked(0)).cpu().numpy())
            rot = (rotation_exp_torch(batch.stacked(1)) @ batch.r0t).cpu().numpy()
            s = (batch.s0t * torch.exp(batch.stacked(2)[:, 0])).cpu().numpy()
            tt = (batch.t0t + 0.1 * batch.s0t[:, None] * batch.stacked(3)).cpu().numpy()
        y_all = [(b.target.vertices - tt[i]) @ rot[i] / s[i] for i, b in enumerate(bodies)]  # template frame
        m_all = [b.target.normals @ rot[i] for i, b in enumerate(bodies)]
        g_all = [None if b.guide is None else (b.guide - tt[i]) @ rot[i] / s[i] for i, b in enumerate(bodies)]
        guide_scale = tuple(cfg.guide_scale) or (1.0,)
        ratio2 = (s / batch.s0) ** 2
        lan_scale = tuple(cfg.fine_landmark_scale) or (1.0,)
        icp_scale = tuple(cfg.fine_icp_scale) or (1.0,)
        for r, dist in enumerate(cfg.fine_dists):
            with torch.no_grad():
                rhs = self.deformer.rhs(self.deformer.transforms(batch.stacked(0))).cpu().numpy()
            for i, body in enumerate(bodies):
                fwd, back = self._correspond(body.target, s[i] * p[i] @ rot[i].T + tt[i], dist * body.s0)
                batch.overlap[i] = float(fwd.valid.mean())
                try:
                    p[i] = self._solve_p(p[i], rhs[i], fwd, back, y_all[i], m_all[i], body.tl, body.sl, ratio2[i],
                                         batch.m_t[i], lan_scale[min(r, len(lan_scale) - 1)],
                                         icp_scale[min(r, len(icp_scale) - 1)], g_all[i],
                                         cfg.guide_weight * guide_scale[min(r, len(guide_scale) - 1)])
                except (RuntimeError, ValueError, np.linalg.LinAlgError) as exc:
                    raise _Diverged([i], str(exc)) from exc
            batch.iters += 1
            # w follows the free vertices (the prior's "local step")
            pt = torch.as_tensor(np.stack(p), **f64)

            e0, k = self._lbfgs_lockstep([body_leaves[:1] for body_leaves in batch.leaves], self._w_energy(batch, pt),
                                         cfg.fine_iters)
            batch.iters += k
            for i in range(len(bodies)):
                batch.history[i].append(("fine", float(dist), float(e0[i]), time.perf_counter() - batch.t_start))
        w_np = batch.stacked(0).detach().cpu().numpy()
        out = []
        for i, body in enumerate(bodies):
            xn = s[i] * p[i] @ rot[i].T + tt[i]
            lan_err = float(np.linalg.norm(xn[body.tl] - body.target.vertices[body.sl], axis=1).mean())
            res = RegistrationResult(xn, p[i], w_np[i].copy(), float(s[i]), rot[i], tt[i], lan_err,
                                     float(batch.overlap[i]), int(batch.iters[i]), 0.0, history=batch.history[i])
            if not np.all(np.isfinite(xn)):
                res.status, res.reason = STATUS_FAILED, "diverged: non-finite vertices"
            elif batch.overlap[i] < cfg.min_overlap:
                res.status, res.reason = STATUS_FAILED, (f"empty overlap: {batch.overlap[i]:.0%} of template vertices "
                                                         "near the target")
            elif lan_err / s[i] > cfg.max_landmark_error:
                res.status, res.reason = STATUS_FAILED, f"diverged: mean landmark error {lan_err / s[i] * 1000:.0f} mm"
            out.append(res)
        return out

    def _solve_p(self, p: np.ndarray, b: np.ndarray, fwd: Correspondences, back: Correspondences, y_all: np.ndarray,
                 m_all: np.ndarray, tl: np.ndarray, sl: np.ndarray, ratio2: float, m_t: int, lan_scale: float = 1.0,
                 icp_scale: float = 1.0, guide: np.ndarray | None = None, guide_weight: float = 0.0) -> np.ndarray:
        """Exact minimiser over p of E_prior/n + lambda_icp (E_icp + rho E_back) + lambda_lan E_lan for fixed T(w),
        correspondences and similarity (everything in the template frame). Scaled by n u^2 / 2 the normal
        equations are ``(L (x) I3 + D) p = b + d`` with L the c-weighted graph Laplacian, b the ACAP
        right-hand side and D, d the 3x3 blocks of the data terms (and of the guide term, ``guide`` (n, 3) in the
        template frame, when given)."""
        import scipy.sparse as sp

        from bodydata.features.reconstruct import SpdFactor

        cfg, n = self.config, self.n
        lap = self._laplacian()
        dblk = np.zeros((n, 3, 3))
        rhs = b.copy()
        # point-to-plane: (lambda/2) h (m m^T)(p - y)
        i = np.flatnonzero(fwd.valid)
        k = fwd.index[i]
        a = 0.5 * cfg.lambda_icp * icp_scale * ratio2 * self.vertex_weight[i]
        mm = m_all[k][:, :, None] * m_all[k][:, None, :]
        np.add.at(dblk, i, a[:, None, None] * mm)
        np.add.at(rhs, i, a[:, None] * np.einsum("kab,kb->ka", mm, y_all[k]))
        # backward point-to-plane along the target normal: (lambda rho n / (2 m_t)) (m_k m_k^T)(p_j - y_k)
        kb = np.flatnonzero(back.valid)
        j = back.index[kb]
        a = 0.5 * cfg.lambda_icp * icp_scale * cfg.fine_reverse_weight * ratio2 * n / m_t * self.vertex_weight[j]
        mm = m_all[kb][:, :, None] * m_all[kb][:, None, :]
        np.add.at(dblk, j, a[:, None, None] * mm)
        np.add.at(rhs, j, a[:, None] * np.einsum("kab,kb->ka", mm, y_all[kb]))
        # landmarks: (lambda_lan n / (2 L)) (p_l - y_l)
        a = 0.5 * cfg.lambda_lan * lan_scale * ratio2 * n / len(tl)
        np.add.at(dblk, tl, a * np.eye(3)[None])
        np.add.at(rhs, tl, a * y_all[sl])
        if guide is not None and guide_weight > 0:  # the body-model guide: (lambda_g / 2) (p_i - g_i), every vertex
            a = 0.5 * guide_weight * ratio2
            dblk += a * np.eye(3)[None]
            rhs += a * guide
        rows = (3 * np.arange(n)[:, None, None] + np.arange(3)[None, :, None]).repeat(3, 2)
        cols = (3 * np.arange(n)[:, None, None] + np.arange(3)[None, None, :]).repeat(3, 1)
        big = sp.kron(lap, sp.identity(3), format="csr") + sp.csr_matrix(
            (dblk.reshape(-1), (rows.reshape(-1), cols.reshape(-1))), shape=(3 * n, 3 * n))
        import torch

        fac = SpdFactor(big.tocsr(), self.device)
        sol = fac.solve(torch.as_tensor(rhs.reshape(-1, 1), dtype=torch.float64, device=self.device))
        return sol.reshape(n, 3).cpu().numpy()

    def _laplacian(self) -> Any:
        if getattr(self, "_lap", None) is None:
            import scipy.sparse as sp

            d = self.deformer
            i, j, c = (t.cpu().numpy() for t in (d.ei, d.ej, d.cw))
            self._lap = (sp.diags(np.bincount(i, weights=c, minlength=self.n))
                         - sp.csr_matrix((c, (i, j)), shape=(self.n, self.n))).tocsr()
        return self._lap
