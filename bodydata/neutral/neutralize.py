"""Per-subject neutral-pose construction (pick the pose closest to the target, ARAP it into the target's pose) and a manifest driver.

Per subject (:meth:`Neutralizer.subject`): every pose mesh of the subject is rigidly aligned to the
target (Kabsch); the one with the smallest RMS residual is deformed with ARAP
(:mod:`bodydata.neutral.arap`) whose soft rotation targets turn each landmark-pair segment to the
target's orientation (:mod:`bodydata.neutral.segments`). The subject's own segment lengths and
shape are kept because only the orientation of its local edge vectors is prescribed.

Driver (:func:`run_neutralize`): reads a manifest CSV (columns ``subject`` and ``path``, optional
``pose``/``id``/``status``; rows with ``status`` other than ``ok`` are skipped), writes
``OUT/neutral/<subject>.ply`` per subject, a PNG before/after per subject (optional) and
``OUT/neutral.csv`` with one row per subject (``status`` done/failed, reason, chosen pose, residuals
before/after in mm, iterations, seconds, segment length change). A subject already ``done`` in
``neutral.csv`` whose mesh exists is skipped on a re-run. A subject without a usable pose, or whose
solve does not converge, is a ``failed`` row, never a crash; the CSV is rewritten atomically after
every subject so an interrupted run keeps what it finished.
"""
from __future__ import annotations

import csv
import io
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from bodydata.errors import BodydataError
from bodydata.neutral.arap import ArapSolver
from bodydata.neutral.procrustes import align
from bodydata.neutral.segments import SEGMENTS, Segment, SegmentModel


class NeutralizeError(BodydataError, ValueError):
    """A subject cannot be neutralised (no usable pose, no convergence) or bad driver input."""


@dataclass
class NeutralConfig:
    """Tunable settings (defaults tuned on anny ground truth, see benchmarks/bench_neutral.py).

    rotation_weight : strength of the segment rotation targets (dimensionless, 1 = a vertex's whole
        one-ring ARAP term).  taper : metres over which the rotation weight ramps up from a part
        boundary.  twist : ``"part"`` or ``"none"`` (see segments).  iterations / tol : ARAP
        stopping rule.  weights : ARAP edge weights, ``"cotangent"`` (clamped) or ``"uniform"``.
    """

    rotation_weight: float = 10.0
    taper: float = 0.04
    twist: str = "part"
    iterations: int = 100
    tol: float = 1e-5
    weights: str = "cotangent"


@dataclass
class NeutralResult:
    """One constructed neutral body.

    vertices : (n, 3) float64 in the target's frame.  pose_index : the chosen pose.
    residuals_mm : (P,) rigid RMS residual of every candidate pose to the target (mm).
    residual_before_mm / residual_after_mm : chosen pose / result vs the target after rigid alignment.
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


class Neutralizer:
    """Holds what is per template: the prefactored ARAP system, the segments and the target neutral.

    template : a :class:`~bodydata.templates.template.Template` (connectivity, parts, landmarks).
    target : (n, 3) float64 target neutral body in the template connectivity (metres).
    """

    def __init__(self, template, target: np.ndarray, config: NeutralConfig | None = None,
                 segments: tuple[Segment, ...] = SEGMENTS) -> None:
        self.config = config or NeutralConfig()
        tgt = np.asarray(target, dtype=np.float64)
        if tgt.shape != (template.n_vertices, 3) or not np.isfinite(tgt).all():
            raise NeutralizeError(f"target neutral has shape {tgt.shape}, expected finite ({template.n_vertices}, 3)")
        self.template = template
        self.target = tgt
        self.solver = ArapSolver(template.vertices, template.faces, weights=self.config.weights)
        self.segments = SegmentModel.from_template(template, segments, taper=self.config.taper)

    def residuals(self, poses: np.ndarray) -> np.ndarray:
        """(P,) float64 rigid RMS residual (metres) of poses (P, n, 3) to the target."""
        return align(np.asarray(poses, dtype=np.float64), self.target).rms

    def deform(self, pose: np.ndarray) -> tuple[np.ndarray, "object"]:
        """Align ``pose`` (n, 3) rigidly to the target and ARAP it into the target's segment orientations.

        Returns (aligned pose (n, 3), :class:`~bodydata.neutral.arap.ArapResult`).
        """
        cfg = self.config
        aligned = align(pose, self.target).apply(pose)
        rot, w, _ = self.segments.rotation_targets(aligned, self.target, cfg.rotation_weight, twist=cfg.twist)
        result = self.solver.solve(aligned, initial=aligned, rotation_targets=rot, rotation_weights=w,
                                   iterations=cfg.iterations, tol=cfg.tol)
        return aligned, result

    def subject(self, poses: np.ndarray) -> NeutralResult:
        """Neutral body of one subject from its poses (P, n, 3) float64 (non-finite poses are skipped)."""
        t0 = time.perf_counter()
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim != 3 or poses.shape[1:] != self.target.shape or len(poses) == 0:
            raise NeutralizeError(f"poses have shape {poses.shape}, expected (P >= 1, {self.target.shape[0]}, 3)")
        finite = np.isfinite(poses).all(axis=(1, 2))
        if not finite.any():
            raise NeutralizeError("no usable pose: every pose mesh has non-finite vertices")
        res = np.full(len(poses), np.inf)
        res[finite] = self.residuals(poses[finite])
        k = int(np.argmin(res))
        aligned, sol = self.deform(poses[k])
        if not sol.converged:
            last = sol.energy[-1] if sol.energy else float("nan")
            raise NeutralizeError(f"ARAP did not converge in {sol.iterations} iterations (energy {last:.3g})")
        after = float(align(sol.vertices, self.target).rms)
        return NeutralResult(
            vertices=sol.vertices, pose_index=k, residuals_mm=res * 1000.0,
            residual_before_mm=float(res[k] * 1000.0), residual_after_mm=after * 1000.0,
            iterations=sol.iterations, converged=sol.converged, seconds=time.perf_counter() - t0,
            segment_lengths_before=self.segments.lengths(aligned), segment_lengths_after=self.segments.lengths(sol.vertices),
            energy=sol.energy,
        )
