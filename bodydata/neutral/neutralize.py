"""Per-subject neutral-pose construction: anny-fitted poses un-posed through their skeletons and fused (method body), or poses nearest the target ARAP'd into its pose and averaged (method arap); a manifest driver.

Method (``NeutralConfig.method``; ``"auto"``, the default, is ``"body"`` on the anny templates and ``"arap"``
elsewhere). ``"body"`` (:meth:`Neutralizer.subject_body`, meshes in an anny topology only): every usable pose
is fitted by anny (:mod:`bodydata.bodyfit.fit_registered`, one phenotype per subject), un-posed through its
fitted skeleton by inverse skinning and re-posed to the target's angles (:mod:`bodydata.neutral.unpose`; 0 for
the ``anny`` target, anny's reference pose), and the un-posed meshes are fused robustly
(:mod:`bodydata.neutral.fuse`: part-wise reweighted mean, a region that disagrees with the other poses or that
the un-posing strained is out-voted). The fused neutral is then fitted once more and taken to the target's angles
through that fit (``NeutralConfig.rearticulate``, :meth:`Neutralizer.rearticulate_once`). Figures, with their
commands, are in docs/pipeline.md ("The neutralize stage"): exact on anny's own bodies (0.00 mm mean MED to the
true neutral, 20 identities x 4 poses), 14.3 mm between FAUST neutrals built from different single poses of one
subject, 11.2 mm when the poses share FAUST's own correspondence.
``NeutralConfig.body_arap`` also runs the ARAP step below on the fused neutral; it made the FAUST neutrals less
consistent (16.9 -> 19.0 mm, before re-articulation), so it is off. A template that is not an anny topology
cannot use ``"body"`` (:class:`NeutralizeError` when the :class:`Neutralizer` is built: the command cannot
start); ``"auto"`` takes ``"arap"`` there.

Method ``"arap"``, per subject (:meth:`Neutralizer.subject`): every pose mesh of the subject is rigidly aligned to the
target (Kabsch) and scored; the best-scored one (by default the best two, averaged) is deformed with ARAP
(:mod:`bodydata.neutral.arap`, system prefactored once per template) whose soft positional handles
are the subject's segments turned rigidly, about their joints, to the target's orientations
(:mod:`bodydata.neutral.segments`). The subject's own segment lengths and shape are kept because
inside a segment its edge vectors are only rotated; ARAP bends the joint bands in between.

Pose choice (``NeutralConfig.selection``). The paper picks the pose with the smallest rigid residual
to the target (``"rigid"``). That residual mixes body shape with articulation (on anny identities
the rigid RMS to the mean body is 50-380 mm whatever the pose) and often prefers a sitting or
crouching pose, whose bent hips and knees ARAP undoes worst. The default ``"joint_angles"`` scores
a pose by the joint-angle distance to the target: the root-sum-square of the angles of
:meth:`~bodydata.neutral.segments.SegmentModel.joint_angles` (each segment's rotation to the target,
measured as in the deformation, relative to its parent's), i.e. how far the joints must bend.
Measured on anny identities (anny template, 12 identities x 4 poses, seed 0, MED to the true neutral
of the chosen pose deformed): rigid residual mean 11.4 / max 19.1 mm, joint angles 8.9 / 11.4 mm
(best pose in hindsight 8.1 mm; maximum joint angle 9.0, per-segment rigid residual 9.5, sum of
angles 10.2 mm).

Averaging (``NeutralConfig.average``, a second deviation from the paper, which deforms one pose).
The ``average`` best-scored poses are each deformed, rigidly aligned to the target and averaged
vertex-wise. Each neutral carries its own pose's skinning distortion and joint-centre error, and
these differ between poses, so the average is closer to the truth: same data, mean / max MED of
the best 1, 2, 3, 4 poses averaged 8.9 / 11.4, 7.7 / 11.8, 7.4 / 12.8, 7.9 / 13.7 mm; anny-lite,
8 identities x 4 poses, seed 2: 11.7 / 16.1, 10.2 / 13.7, 11.0 / 16.7 mm for 1, 2, 3 (the paper's
rule: 20.8 / 35.4 mm). Two poses (the default) gave the smallest maximum everywhere.
``average=1`` with ``selection="rigid"`` is the paper's method.

Forced pose. ``Neutralizer.subject(poses, pose=k)`` (and ``neutralize_subject_files(..., force_pose=label)``)
skips the choice: exactly pose ``k`` is deformed, alone (no averaging), whatever its score; the result
and the row record it (``forced``, ``selection="forced"``). Used to measure how much the neutral depends
on the source pose (``benchmarks/bench_neutral_faust.py``); the default (``pose=None``) is unchanged.

Driver (:func:`run_neutralize`): reads a manifest CSV (source rows, or just columns ``subject`` and ``path``;
rows not ``done`` are skipped; subjects keyed by :func:`~bodydata.manifest.source_rows.subject_key`), writes
``OUT/neutral/<key>.ply`` per subject, a PNG before/after per subject (optional) and
``OUT/neutral.csv``, a source-row manifest (``bodydata build-dataset --neutral`` reads it) with one
``constructed_neutral`` row per subject plus its key and figures (``status`` done/failed, reason, chosen pose, residuals
before/after in mm, selection (the method, or ``forced``) and score, the poses averaged, iterations, seconds, segment length
change, method, per-part strain, the fits' MED per pose (body), MED to the true neutral when the manifest has one).
A subject already ``done`` in ``neutral.csv`` whose mesh exists is skipped on a re-run. A subject without a usable pose, or whose
solve does not converge, is a ``failed`` row, never a crash; the CSV is rewritten atomically after
every subject so an interrupted run keeps what it finished.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from bodydata.errors import BodydataError
from bodydata.manifest.source_rows import ManifestRow, read_source_rows, subject_keys, write_source_rows
from bodydata.manifest.status import is_done
from bodydata.neutral.arap import ArapResult, ArapSolver
from bodydata.mesh.alignment import align
from bodydata.neutral.segments import SEGMENTS, Segment, SegmentModel


#: templates in an anny topology (same vertex order as anny of that topology): the body method's domain.
ANNY_TOPOLOGIES = {"anny": "notoes", "anny-lite": "notoes_collapse10pc"}
#: neutral methods: ``auto`` = ``body`` on the anny templates, ``arap`` elsewhere
METHODS = ("auto", "body", "arap")


class NeutralizeError(BodydataError, ValueError):
    """A subject cannot be neutralised (no usable pose, no convergence) or bad driver input."""


@dataclass
class NeutralConfig:
    """Tunable settings (defaults tuned on anny ground truth, see benchmarks/bench_neutral.py).

    handle_weight : ARAP weight of the re-posed segment vertices (dimensionless, relative to the
        edge weights).  taper : metres (on the template); vertices at least ``taper * handle_threshold``
        from any other segment are handles, the joint bands between segments are free.
        orientation : how a segment's rotation is measured, ``"part"`` (Kabsch of its vertices),
        ``"landmarks"`` (landmark-pair swing + surface twist) or ``"swing"`` (see segments).
        selection : how the pose to deform is chosen, ``"joint_angles"`` (smallest joint-angle
        distance to the target, default) or ``"rigid"`` (smallest rigid residual, the paper's rule);
        module docstring.
        average : how many of the best-scored poses are deformed and averaged (1 = the paper's single pose).
        iterations / tol : ARAP stopping rule.
        weights : ARAP edge weights, ``"cotangent"`` (clamped) or ``"uniform"``.
        anny_joints : on anny templates, place joint centres from anny's rest bone heads (else
        part-boundary centroids).  band : metres; joint centres combine the child segment's vertices
        within ``band`` of its parent.  robust : metres, Huber threshold of the reweighted per-segment
        Kabsch (``orientation="part"``; 0 = plain Kabsch).
        girdle : segments whose joint centre swings about the jugular notch to the target's direction
        (a clavicle joint; :meth:`~bodydata.neutral.segments.SegmentModel.handle_targets`); () = off,
        the default. ``("upper_arm_L", "upper_arm_R")`` makes FAUST neutrals built from different poses of
        one subject agree better (pairwise MED 32.6 -> 18.6 mm on subject 0) but moves anny neutrals
        away from the truth (anny-lite 8.5 -> 11.1 mm, 12k 8.2 -> 9.2 mm): it imposes the target's
        clavicle slope, which varies with body shape.
        method : ``"auto"`` (the default: ``"body"`` on the anny templates, where it measured better, ``"arap"``
        elsewhere), ``"body"`` (anny templates only: every pose fitted by anny, un-posed through its skeleton and
        fused, :mod:`bodydata.neutral.unpose`, :mod:`bodydata.neutral.fuse`) or ``"arap"`` (the pose choice,
        ARAP and averaging above). body_arap : with ``"body"``, run the ARAP step with the segment-orientation
        handles on the fused neutral too (off by default: on anny ground truth it moves the neutral away from
        the truth). share_phenotype : with ``"body"``, one phenotype for all poses of a subject. rearticulate :
        with ``"body"``, passes of :meth:`Neutralizer.rearticulate_once` on the fused neutral (fit it again, take it to
        the target's angles through that fit); 0 = off.
    """

    handle_weight: float = 10.0
    taper: float = 0.04
    handle_threshold: float = 0.5
    anny_joints: bool = True
    band: float = 0.12
    robust: float = 0.03
    orientation: str = "part"
    selection: str = "joint_angles"
    average: int = 2
    iterations: int = 100
    tol: float = 1e-5
    weights: str = "cotangent"
    girdle: tuple = ()
    method: str = "auto"
    body_arap: bool = False
    share_phenotype: bool = True
    rearticulate: int = 1


@dataclass
class NeutralResult:
    """One constructed neutral body.

    vertices : (n, 3) float64 in the target's frame.  pose_index : the chosen (best-scored) pose.
    pose_indices : the poses whose neutrals were averaged (method arap: best first, ``pose_index`` first;
        method body: every usable pose, fused).
    method : "arap" | "body".  part_strain : (16,) float64 mean |log edge-length ratio| per template part
        between the result and the poses used (averaged over them).  fit_med_mm : (P,) float64, method body:
        the anny fit's mean vertex distance to each pose (NaN for unusable poses).
    residuals_mm : (P,) rigid RMS residual of every candidate pose to the target (mm).
    scores : (P,) selection score of every candidate (``inf`` for unusable poses): mm for
        ``selection="rigid"``, degrees (root-sum-square of joint angles) for ``"joint_angles"``.
    residual_before_mm / residual_after_mm : chosen pose / result vs the target after rigid alignment.
    forced : True when the pose was imposed by the caller (``subject(..., pose=k)``), not selected.
    segment_lengths_before / _after : (s,) float64 metres (chosen pose / result).
    """

    vertices: np.ndarray
    pose_index: int
    residuals_mm: np.ndarray
    residual_before_mm: float
    residual_after_mm: float
    iterations: int
    converged: bool
    seconds: float
    segment_lengths_before: np.ndarray
    segment_lengths_after: np.ndarray
    energy: list[float] = field(default_factory=list)
    scores: np.ndarray | None = None
    pose_indices: tuple[int, ...] = ()
    forced: bool = False
    method: str = "arap"
    part_strain: np.ndarray | None = None
    fit_med_mm: np.ndarray | None = None


class Neutralizer:
    """Holds what is per template: the prefactored ARAP system, the segments and the target neutral.

    template : a :class:`~bodydata.templates.template.Template` (connectivity, parts, landmarks).
    target : (n, 3) float64 target neutral body in the template connectivity (metres).
    """

    def __init__(self, template, target: np.ndarray, config: NeutralConfig | None = None,
                 segments: tuple[Segment, ...] = SEGMENTS) -> None:
        self.config = config or NeutralConfig()
        if self.config.selection not in ("joint_angles", "rigid"):
            raise NeutralizeError(f"selection must be 'joint_angles' or 'rigid', got {self.config.selection!r}")
        if int(self.config.average) < 1:
            raise NeutralizeError(f"average must be >= 1, got {self.config.average!r}")
        if int(self.config.rearticulate) != self.config.rearticulate or self.config.rearticulate < 0:
            raise NeutralizeError(f"rearticulate must be a whole number >= 0, got {self.config.rearticulate!r}")
        tgt = np.asarray(target, dtype=np.float64)
        if tgt.shape != (template.n_vertices, 3) or not np.isfinite(tgt).all():
            raise NeutralizeError(f"target neutral has shape {tgt.shape}, expected finite ({template.n_vertices}, 3)")
        self.template = template
        self.target = tgt
        joints = None
        if self.config.anny_joints and segments is SEGMENTS:
            from bodydata.neutral.segments import anny_joint_positions

            joints = anny_joint_positions(template)
        self.segments = SegmentModel.from_template(template, segments, taper=self.config.taper, joints=joints,
                                                   band=self.config.band)
        self.handles = self.segments.handle_ids(self.config.handle_threshold)
        self.solver = ArapSolver(template.vertices, template.faces, handles=self.handles,
                                 handle_weight=self.config.handle_weight, weights=self.config.weights)
        self.body = None
        if self.config.method not in METHODS:
            raise NeutralizeError(f"method must be 'auto', 'body' or 'arap', got {self.config.method!r}")
        self.method = self.config.method
        if self.method == "auto":
            self.method = "body" if str(template.name) in ANNY_TOPOLOGIES else "arap"
        if self.method == "body":
            self._init_body()

    def _init_body(self) -> None:
        """The anny fitter of the template's topology and the target's angles (0 = anny's reference pose)."""
        from bodydata.bodyfit.fit_registered import RegisteredFitter

        topology = ANNY_TOPOLOGIES.get(str(self.template.name))
        if topology is None:
            raise NeutralizeError(f"method 'body' needs an anny-topology template ({', '.join(ANNY_TOPOLOGIES)}); "
                                  f"template {self.template.name!r} is not one (use method 'arap')")
        self.fitter = RegisteredFitter(topology)
        self.body = self.fitter.body
        if self.body.n_vertices != self.template.n_vertices:
            raise NeutralizeError(f"template {self.template.name!r} has {self.template.n_vertices} vertices, anny "
                                  f"{topology} {self.body.n_vertices}")
        if np.allclose(self.target, _anny_reference_body(topology), atol=1e-9):
            self.target_angles = np.zeros(self.body.n_dofs)  # the target is anny's reference pose
        else:  # another target body: its pose from an anny fit
            self.target_angles = self.fitter.fit(self.target[None])[0].angles

    @property
    def rearticulations(self) -> int:
        """Re-articulation passes this neutralizer makes (0 with method arap, which has none)."""
        return int(self.config.rearticulate) if self.method == "body" else 0

    def residuals(self, poses: np.ndarray) -> np.ndarray:
        """(P,) float64 rigid RMS residual (metres) of poses (P, n, 3) to the target."""
        return align(np.asarray(poses, dtype=np.float64), self.target).rms

    def segment_rotations(self, aligned: np.ndarray) -> np.ndarray:
        """(s, 3, 3) rotations turning each segment of ``aligned`` (n, 3), already rigidly aligned, to the target."""
        cfg = self.config
        if cfg.orientation == "part" and cfg.robust > 0:
            return self.segments.robust_part_rotations(aligned, self.target, threshold=cfg.robust)[0]
        return self.segments.rotations(aligned, self.target, mode=cfg.orientation)

    def joint_angle_distance(self, pose: np.ndarray) -> float:
        """Root-sum-square (degrees) of the joint angles between ``pose`` (n, 3) and the target."""
        aligned = align(pose, self.target).apply(pose)
        ang = self.segments.joint_angles(self.segment_rotations(aligned))
        return float(np.degrees(np.sqrt(np.sum(ang * ang))))

    def scores(self, poses: np.ndarray) -> np.ndarray:
        """(P,) float64 selection score of poses (P, n, 3), smaller is better (``config.selection``)."""
        poses = np.asarray(poses, dtype=np.float64)
        if self.config.selection == "rigid":
            return self.residuals(poses) * 1000.0
        return np.array([self.joint_angle_distance(p) for p in poses])

    def deform(self, pose: np.ndarray) -> tuple[np.ndarray, ArapResult]:
        """Align ``pose`` (n, 3) rigidly to the target and ARAP it into the target's segment orientations.

        Returns (aligned pose (n, 3), :class:`~bodydata.neutral.arap.ArapResult`).
        """
        cfg = self.config
        aligned = align(pose, self.target).apply(pose)
        rot = self.segment_rotations(aligned)
        reposed = self.segments.handle_targets(aligned, rot, self.target, tuple(cfg.girdle))
        result = self.solver.solve(aligned, initial=reposed, handle_targets=reposed[self.handles],
                                   iterations=cfg.iterations, tol=cfg.tol)
        return aligned, result

    def part_strain(self, result: np.ndarray, sources: np.ndarray) -> np.ndarray:
        """(16,) float64 mean over ``sources`` (P, n, 3) of the per-part edge strain to ``result`` (n, 3)."""
        from bodydata.neutral.fuse import part_strain

        k = len(self.template.part_names)
        return np.mean([part_strain(src, result, self.template.faces, self.template.part_labels, k) for src in sources],
                       axis=0)

    def subject_body(self, poses: np.ndarray, only: int | None = None) -> NeutralResult:
        """Method body: fit anny to every usable pose (P, n, 3), un-pose each through its skeleton, re-pose to the
        target's angles, fuse robustly (optionally ARAP to the target's segment orientations), align to the target.
        only : un-pose just this pose (a forced pose)."""
        from bodydata.neutral.fuse import fuse, part_strain
        from bodydata.neutral.unpose import unpose_to

        t0 = time.perf_counter()
        finite = np.isfinite(poses).all(axis=(1, 2))
        use = np.flatnonzero(finite) if only is None else np.array([only])
        fits = self.fitter.fit(poses[use], share_phenotype=self.config.share_phenotype)
        import torch

        cat = lambda f: torch.cat([getattr(x.params(self.body), f) for x in fits])  # noqa: E731
        from bodydata.bodyfit.body import BodyParams

        params = BodyParams(*(cat(f) for f in ("phenotype", "angles", "rotation", "translation", "scale")))
        # un-posed to anny's bind pose, then through the subject's own bones into the target's angles (0: anny's
        # reference pose, which is not the bind pose: they differ by up to 10 cm at the arms)
        rest = unpose_to(self.body, params, poses[use], self.target_angles)
        phen = np.stack([f.phenotype for f in fits])
        k = len(self.template.part_names)
        strain = np.stack([part_strain(poses[j], rest[i], self.template.faces, self.template.part_labels, k)
                           for i, j in enumerate(use)])
        fused = fuse(rest, self.template.faces, self.template.part_labels, strain=strain).vertices
        for _ in range(self.rearticulations):
            fused = self.rearticulate_once(fused, phen.mean(0))
        iters, energy = 0, []
        if self.config.body_arap:
            _, sol = self.deform(fused)
            if not sol.converged:
                raise NeutralizeError(f"ARAP did not converge in {sol.iterations} iterations")
            fused, iters, energy = sol.vertices, sol.iterations, sol.energy
        vertices = align(fused, self.target).apply(fused)
        res = np.full(len(poses), np.inf)
        res[finite] = self.residuals(poses[finite])
        med = np.full(len(poses), np.nan)
        med[use] = [f.med_mm for f in fits]
        # each pose's selection score (nothing is selected: reported, and the best-scored pose is the row's chosen one)
        score = np.full(len(poses), np.inf)
        score[use] = self.scores(poses[use])
        k0 = int(use[np.argmin(score[use])])
        aligned = align(poses[k0], self.target).apply(poses[k0])
        return NeutralResult(
            vertices=vertices, pose_index=k0, residuals_mm=res * 1000.0, residual_before_mm=float(res[k0] * 1000.0),
            residual_after_mm=float(align(vertices, self.target).rms) * 1000.0, iterations=iters, converged=True,
            seconds=time.perf_counter() - t0, segment_lengths_before=self.segments.lengths(aligned),
            segment_lengths_after=self.segments.lengths(vertices), energy=energy, scores=score,
            pose_indices=tuple(int(j) for j in use), method="body", forced=only is not None,
            part_strain=self.part_strain(vertices, poses[use]), fit_med_mm=med)

    def rearticulate_once(self, mesh: np.ndarray, phenotype: np.ndarray) -> np.ndarray:
        """``mesh`` (n, 3) un-posed once, fitted by anny again (from ``phenotype`` (6,)) and taken to the target's
        angles through that fit: what the first fits left as a turned limb in the residual (anny explains a real body
        only to 10-20 mm, so its fit of a limb is a compromise that depends on the pose) is read as articulation here,
        near the target pose, and removed. On a body anny explains exactly it changes nothing."""
        import dataclasses

        from bodydata.bodyfit.fit_registered import RegisteredFitter
        from bodydata.neutral.unpose import unpose_to

        start = tuple(float(v) for v in np.clip(phenotype, 0.0, 1.0))
        fitter = RegisteredFitter(self.body, dataclasses.replace(self.fitter.settings, phenotype_start=start,
                                                                 restart=False))
        fit = fitter.fit(mesh)[0]
        return unpose_to(self.body, fit.params(self.body), mesh, self.target_angles)[0]

    def subject(self, poses: np.ndarray, pose: int | None = None) -> NeutralResult:
        """Neutral body of one subject from its poses (P, n, 3) float64 (non-finite poses are skipped).

        pose : None (default) selects and averages poses as configured; an index forces that pose:
        exactly ``poses[pose]`` is deformed on its own (no averaging), and only its score is computed
        (the other entries of ``scores`` are NaN). A forced pose that is out of range or non-finite
        raises :class:`NeutralizeError`.
        """
        t0 = time.perf_counter()
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim != 3 or poses.shape[1:] != self.target.shape or len(poses) == 0:
            raise NeutralizeError(f"poses have shape {poses.shape}, expected (P >= 1, {self.target.shape[0]}, 3)")
        finite = np.isfinite(poses).all(axis=(1, 2))
        if not finite.any():
            raise NeutralizeError("no usable pose: every pose mesh has non-finite vertices")
        if self.method == "body":
            if pose is not None and (not 0 <= int(pose) < len(poses) or int(pose) != pose or not finite[int(pose)]):
                raise NeutralizeError(f"forced pose {pose!r} is not a usable index of the {len(poses)} poses")
            return self.subject_body(poses, None if pose is None else int(pose))
        res = np.full(len(poses), np.inf)
        res[finite] = self.residuals(poses[finite])
        if pose is not None:
            k = int(pose)
            if not 0 <= k < len(poses) or k != pose:
                raise NeutralizeError(f"forced pose {pose!r} is not an index of the {len(poses)} poses")
            if not finite[k]:
                raise NeutralizeError(f"forced pose {k} has non-finite vertices")
            # Scoring the other poses would only cost time: nothing is chosen.
            score = np.full(len(poses), np.nan)
            score[k] = res[k] * 1000.0 if self.config.selection == "rigid" else self.scores(poses[k:k + 1])[0]
            ranked = [k]
        else:
            score = np.full(len(poses), np.inf)
            score[finite] = res[finite] * 1000.0 if self.config.selection == "rigid" else self.scores(poses[finite])
            ranked = [int(j) for j in np.argsort(score, kind="stable") if np.isfinite(score[j])][: int(self.config.average)]
        k = ranked[0]
        aligned, sol = self.deform(poses[k])
        if not sol.converged:
            last = sol.energy[-1] if sol.energy else float("nan")
            raise NeutralizeError(f"ARAP did not converge in {sol.iterations} iterations (energy {last:.3g})")
        used, outs, iters, energy = [k], [sol.vertices], sol.iterations, sol.energy
        for j in ranked[1:]:
            other = self.deform(poses[j])[1]
            if other.converged:  # an extra pose that fails to converge is left out of the average
                used.append(j)
                outs.append(align(other.vertices, self.target).apply(other.vertices))
                iters = max(iters, other.iterations)
        if len(outs) > 1:
            outs[0] = align(outs[0], self.target).apply(outs[0])
        vertices = np.mean(outs, axis=0)
        after = float(align(vertices, self.target).rms)
        return NeutralResult(
            vertices=vertices, pose_index=k, residuals_mm=res * 1000.0,
            residual_before_mm=float(res[k] * 1000.0), residual_after_mm=after * 1000.0,
            iterations=iters, converged=True, seconds=time.perf_counter() - t0,
            segment_lengths_before=self.segments.lengths(aligned), segment_lengths_after=self.segments.lengths(vertices),
            energy=energy, scores=score, pose_indices=tuple(used), forced=pose is not None, method="arap",
            part_strain=self.part_strain(vertices, poses[used]),
        )


# ---------------------------------------------------------------------------------------- targets
def _anny_reference_body(topology: str) -> np.ndarray:
    """(n, 3) float64 anny's mean-phenotype body at its reference pose (angles 0), metres."""
    import torch

    from bodydata.bodyfit.body import AnnyBody

    body = AnnyBody(topology)
    with torch.no_grad():
        return body(body.params(1)).posed[0].cpu().numpy().astype(np.float64)


def load_target(spec: str | os.PathLike, template, spring_dir: str | os.PathLike | None = None) -> np.ndarray:
    """The target neutral (n, 3) float64 for ``spec``.

    ``"anny"``: anny's body of the mean phenotype (every phenotype parameter 0.5) at its reference pose (every
    pose parameter identity), in the template's topology: the pose of the generator's true neutrals. (The
    ``anny``/``anny-lite`` templates hold anny's bind pose, which differs from it by up to 55 mm at the arms;
    aiming at the template made a method's error against the truth mostly a pose offset.) ``"scape"``: the mean of the SPRING male and
    female mean bodies (``male_mean_vertex.npy``, ``female_mean_vertex.npy`` in ``spring_dir``).
    Anything else: a mesh file path. The vertex count must match the template.
    """
    from bodydata.mesh import read_mesh

    n = template.n_vertices
    key = str(spec)
    if key == "anny":
        topology = (template.meta or {}).get("anny_topology")
        if not str(template.name).startswith("anny") or not topology:
            raise NeutralizeError(f"target 'anny' needs an anny template, got {template.name!r}")
        return _anny_reference_body(topology)
    if key == "scape":
        if spring_dir is None:
            raise NeutralizeError("target 'scape' needs the SPRING release_model folder (--spring-dir)")
        folder = Path(spring_dir)
        try:
            arrs = [np.load(folder / f"{sex}_mean_vertex.npy") for sex in ("male", "female")]
        except (OSError, ValueError) as exc:
            raise NeutralizeError(f"{folder}: cannot read the SPRING mean bodies ({exc})") from None
        target = 0.5 * (np.asarray(arrs[0], dtype=np.float64) + np.asarray(arrs[1], dtype=np.float64))
        if target.shape != (n, 3):
            raise NeutralizeError(f"{folder}: SPRING mean has shape {target.shape}, the template has {n} vertices")
        return target
    if not Path(key).is_file():
        raise NeutralizeError(f"target {key!r}: not 'anny', 'scape' or an existing mesh file")
    try:
        return read_mesh(key, expected_vertices=n).vertices
    except BodydataError as exc:
        raise NeutralizeError(str(exc)) from None


# ---------------------------------------------------------------------------------------- driver
COLUMNS = (
    "subject", "status", "reason", "chosen_pose", "chosen_path", "n_poses", "selection", "selection_score", "averaged_poses",
    "residual_before_mm",
    "residual_after_mm", "iterations", "seconds", "seg_len_change_mean_mm", "seg_len_change_max_mm",
    "seg_len_change_max_pct", "method", "rearticulate", "part_strain_pct", "fit_med_mm", "med_to_truth_mm", "output", "png",
)
CSV_NAME = "neutral.csv"


@dataclass
class NeutralizeSummary:
    """What :func:`run_neutralize` did: counts, the rows (dicts, :data:`COLUMNS`) and the CSV path."""

    n_done: int
    n_failed: int
    n_skipped: int
    rows: list[dict]
    csv_path: Path


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "subject"


@dataclass
class Subject:
    """The poses of one subject of a manifest.

    key : :func:`~bodydata.manifest.source_rows.subject_key` of (source, subject) over the whole manifest; names
    the neutral (``neutral/<key>.ply``) and its row.  poses : [(pose label, mesh path)], the usable pose rows.
    topology : of the first pose row.  truth : the path of the subject's ground-truth neutral (a ``kind=neutral``
    row, e.g. the anny generator's), or "".
    """

    key: str
    source: str
    subject: str
    topology: str = ""
    poses: list[tuple[str, Path]] = field(default_factory=list)
    truth: str = ""


def read_subjects(path: str | os.PathLike) -> dict[str, Subject]:
    """Group a manifest's usable pose rows by subject key (see :class:`Subject`).

    Reads source rows (:func:`~bodydata.manifest.source_rows.read_source_rows`); a hand-written list needs only
    the columns ``subject`` and ``path``. ``pose`` (else ``id``, else the file stem) labels a pose. Rows that are
    not done, have an empty subject or are ``kind=neutral`` (ground truth) are no candidate poses; a done
    ``kind=neutral`` row gives its subject's ``truth``. Subjects without a pose row are left out.
    """
    path = Path(path)
    try:
        rows = read_source_rows(path, required=("subject", "path"))
    except BodydataError as exc:
        raise NeutralizeError(str(exc)) from None
    if not rows:
        raise NeutralizeError(f"{path}: manifest has no rows")
    subjects: dict[str, Subject] = {}
    truths: dict[str, str] = {}
    for row, key in zip(rows, subject_keys(rows)):
        if not is_done(row.status) or not row.subject.strip():
            continue
        if row.kind.strip() == "neutral":  # a ground-truth neutral is no candidate pose
            truths.setdefault(key, row.path)
            continue
        sub = subjects.setdefault(key, Subject(key, row.source, row.subject.strip(), row.topology))
        label = row.pose.strip() or row.id.strip() or Path(row.path).stem
        sub.poses.append((label, Path(row.path)))
    for key, sub in subjects.items():
        sub.truth = truths.get(key, "")
    return subjects


def read_pose_manifest(path: str | os.PathLike) -> dict[str, list[tuple[str, Path]]]:
    """``{subject key: [(pose label, mesh path), ...]}`` of a manifest (:func:`read_subjects`)."""
    return {key: sub.poses for key, sub in read_subjects(path).items()}


def neutral_id(source: str, subject: str) -> str:
    """The manifest id of a subject's constructed neutral (``<source>-neutral-<subject>``)."""
    return f"{source}-neutral-{subject}" if source else f"neutral-{subject}"


def constructed_neutral_row(sub: Subject, mesh: str | os.PathLike, sha256: str = "", status: str = "done",
                            error: str = "") -> ManifestRow:
    """The source row of a subject's constructed neutral (``kind=constructed_neutral``): what ``neutral.csv``
    holds and what a dataset build reads as the subject's neutral mesh."""
    return ManifestRow(id=neutral_id(sub.source, sub.subject), source=sub.source, kind="constructed_neutral",
                       path=str(mesh), topology=sub.topology, subject=sub.subject, sha256=sha256, units="",
                       up_axis="", status=status, error=error)


def _read_done(csv_path: Path) -> dict[str, dict]:
    """The rows of an earlier run's ``neutral.csv`` by subject key (as :data:`COLUMNS` dicts)."""
    if not csv_path.is_file():
        return {}
    try:
        rows = read_source_rows(csv_path)
    except BodydataError:  # a file from before neutral.csv held source rows: its subjects are simply redone
        return {}
    return {r.extra.get("key", r.subject): {**r.extra, "subject": r.extra.get("key", r.subject), "status": r.status}
            for r in rows}


def write_neutral_csv(csv_path: Path, rows: dict[str, dict], subjects: dict[str, Subject]) -> None:
    """``neutral.csv`` from ``rows`` (subject key -> a :data:`COLUMNS` dict, ``output`` relative to the CSV's
    folder): one source row per subject (:func:`constructed_neutral_row`), then the key and the per-subject
    figures. Written atomically."""
    from bodydata.fsutil import sha256_file

    out = []
    for key in sorted(rows):
        r = rows[key]
        sub = subjects.get(key) or Subject(key, "", key)
        mesh = r.get("output", "") if r.get("status") == "done" else ""
        sha = sha256_file(csv_path.parent / mesh) if mesh else ""
        row = constructed_neutral_row(sub, mesh, sha, r.get("status", "failed"), r.get("reason", ""))
        row.extra = {"key": key, **{c: str(r.get(c, "")) for c in COLUMNS if c not in ("subject", "status")}}
        out.append(row)
    write_source_rows(csv_path, out)


def neutralize_subject_files(
    neutralizer: Neutralizer, subject: str, poses: Sequence[tuple[str, Path]], out_dir: Path, png: bool = True,
    force_pose: str | None = None, truth: np.ndarray | None = None,
) -> dict:
    """Neutralise one subject from its mesh files; returns its row (raises NeutralizeError on failure).

    force_pose : a pose label of ``poses``: deform exactly that mesh (see :meth:`Neutralizer.subject`,
    ``pose=``); the row's ``selection`` is then ``forced``. An unknown or unreadable label raises.
    truth : (n, 3) float64 the subject's true neutral when the source knows it; the PNG then shows the
    error against it (else the distance to the target).
    """
    from bodydata.mesh import read_mesh, write_mesh
    from bodydata.mesh.alignment import mean_euclidean_distance

    n = neutralizer.template.n_vertices
    arrays, labels, paths, problems = [], [], [], []
    for label, mesh in poses:
        try:
            arrays.append(read_mesh(mesh, expected_vertices=n).vertices)
            labels.append(label)
            paths.append(mesh)
        except BodydataError as exc:
            problems.append(str(exc))
    if not arrays:
        raise NeutralizeError(f"no usable pose ({len(poses)} listed): " + ("; ".join(problems[:2]) or "none"))
    forced = None
    if force_pose is not None:
        if str(force_pose) not in labels:
            raise NeutralizeError(f"forced pose {force_pose!r} is not a readable pose of subject {subject!r} "
                                  f"(readable: {', '.join(labels)})")
        forced = labels.index(str(force_pose))
    res = neutralizer.subject(np.stack(arrays), pose=forced)
    name = _safe_name(subject)
    out_mesh = out_dir / "neutral" / f"{name}.ply"
    write_mesh(out_mesh, res.vertices, neutralizer.template.faces)
    png_rel = ""
    if png:
        from bodydata.mesh.alignment import vertex_distances
        from bodydata.templates.template import axis_vector
        from bodydata.viz.before_after import VertexError, render_before_after

        tpl = neutralizer.template
        chosen = align(arrays[res.pose_index], neutralizer.target).apply(arrays[res.pose_index])
        poses_used = " + ".join(labels[j] for j in res.pose_indices)
        if truth is not None:
            error = VertexError(1000.0 * vertex_distances(res.vertices, truth), "error to true neutral")
            headline = f"error to true neutral {error.values_mm.mean():.1f} mm mean"
        else:  # the target is another body: this distance is mostly body shape, not construction error
            error = VertexError(1000.0 * vertex_distances(res.vertices, neutralizer.target), "distance to target")
            headline = (f"no true neutral known; residual to target {res.residual_before_mm:.1f} -> "
                        f"{res.residual_after_mm:.1f} mm RMS")
        render_before_after(
            out_dir / "png" / f"{name}.png", tpl.faces, [chosen, res.vertices, neutralizer.target],
            ["forced pose" if res.forced else "best-scored pose", "constructed neutral", "target"],
            up=axis_vector(tpl.up_axis), front=axis_vector(tpl.front_axis),
            suptitle=f"{subject}: pose {poses_used}, {headline}", error=error,
        )
        png_rel = f"png/{name}.png"
    change = (res.segment_lengths_after - res.segment_lengths_before) * 1000.0
    pct = 100.0 * np.abs(change) / np.maximum(res.segment_lengths_before * 1000.0, 1e-9)
    return {
        "subject": subject, "status": "done", "reason": "", "chosen_pose": labels[res.pose_index],
        "chosen_path": str(paths[res.pose_index]), "n_poses": len(arrays),
        "selection": "forced" if res.forced else (neutralizer.config.selection if res.method == "arap" else "all"),
        "selection_score": f"{res.scores[res.pose_index]:.3f}" if res.scores is not None else "",
        "averaged_poses": ";".join(labels[j] for j in res.pose_indices),
        "residual_before_mm": f"{res.residual_before_mm:.3f}", "residual_after_mm": f"{res.residual_after_mm:.3f}",
        "iterations": res.iterations, "seconds": f"{res.seconds:.3f}",
        "seg_len_change_mean_mm": f"{np.abs(change).mean():.3f}", "seg_len_change_max_mm": f"{np.abs(change).max():.3f}",
        "seg_len_change_max_pct": f"{pct.max():.3f}", "method": res.method,
        "rearticulate": neutralizer.rearticulations,
        "part_strain_pct": _part_strain_text(neutralizer.template.part_names, res.part_strain),
        "fit_med_mm": ";".join(f"{labels[j]}:{res.fit_med_mm[j]:.2f}" for j in res.pose_indices)
        if res.fit_med_mm is not None else "",
        "med_to_truth_mm": f"{1000.0 * mean_euclidean_distance(res.vertices, truth):.3f}" if truth is not None else "",
        "output": f"neutral/{name}.ply", "png": png_rel,
    }


def _part_strain_text(names: Sequence[str], strain: np.ndarray | None) -> str:
    """``part:percent;...`` of a per-part strain (mean |log edge ratio|, shown in percent)."""
    if strain is None:
        return ""
    return ";".join(f"{n}:{100.0 * v:.2f}" for n, v in zip(names, strain))


def run_neutralize(
    manifest: str | os.PathLike,
    template,
    target: np.ndarray,
    out_dir: str | os.PathLike,
    config: NeutralConfig | None = None,
    png: bool = True,
    progress: bool = True,
    on_subject: Callable[[str, dict], None] | None = None,
) -> NeutralizeSummary:
    """Neutralise every subject of ``manifest`` into ``out_dir`` (layout in the module docstring).

    Subjects already ``done`` in ``OUT/neutral.csv`` by the same method with their mesh present are skipped. Per-subject
    problems become ``failed`` rows; the CSV is rewritten atomically after each subject.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    subjects = read_subjects(manifest)
    out.mkdir(parents=True, exist_ok=True)
    groups = {key: sub.poses for key, sub in subjects.items()}
    neutralizer = Neutralizer(template, target, config)
    csv_path = out / CSV_NAME
    rows = _read_done(csv_path)
    done = failed = skipped = 0
    for subject in tqdm(sorted(groups), desc="neutralize", unit="subject", disable=not progress):
        old = rows.get(subject)
        # a neutral made another way (an older run, another --method or re-articulation) is made again
        same_method = (old is not None and (old.get("method") or "arap") == neutralizer.method  # no column: arap
                       and int(old.get("rearticulate") or 0) == neutralizer.rearticulations)  # no column: none
        if (old and old.get("status") == "done" and old.get("output") and (out / old.get("output", "")).is_file()
                and same_method):
            skipped += 1
            continue
        t0 = time.perf_counter()
        try:
            truth = None
            if subjects[subject].truth:  # a generated source knows the true neutral: the picture shows the error to it
                from bodydata.mesh import read_mesh

                truth = read_mesh(subjects[subject].truth, expected_vertices=template.n_vertices).vertices
            row = neutralize_subject_files(neutralizer, subject, groups[subject], out, png=png, truth=truth)
            done += 1
        except BodydataError as exc:
            row = {"subject": subject, "status": "failed", "reason": f"{type(exc).__name__}: {exc}",
                   "n_poses": len(groups[subject]), "seconds": f"{time.perf_counter() - t0:.3f}"}
            failed += 1
        rows[subject] = row
        write_neutral_csv(csv_path, rows, subjects)
        if on_subject is not None:
            on_subject(subject, row)
    if not csv_path.exists():
        write_neutral_csv(csv_path, rows, subjects)
    return NeutralizeSummary(done, failed, skipped, [rows[k] for k in sorted(rows)], csv_path)
