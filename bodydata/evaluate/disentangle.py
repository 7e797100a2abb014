"""Disentanglement measured against the generator's ground truth (anny bodies), for a shape/pose embedding.

(a) neutral from a posed body: decode (e_s, 0) with e_s fitted to one posed test mesh; MED to the identity's true
    neutral (the dataset's ``neutral_path``), after Kabsch alignment (the decoder's frame is not the data's).
(b) pose transfer: e_s fitted to identity A's neutral test mesh with e_p fitted to a posed test mesh of identity
    B != A; MED to anny's body of A in B's exact pose (:class:`~bodydata.generator.transfer.PoseTransferTruth`),
    after Kabsch alignment.
(c) shape stability: spread of e_s over one identity's test meshes against the spread over identities:
    within = RMS over meshes of |e_s - mean of its identity|, between = RMS over identities of |identity mean -
    mean of the identity means|; the ratio within / between is small for a shape code that ignores pose.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from bodydata.evaluate.metrics import med_mm
from bodydata.evaluate.reconstruction import RunReconstruction, SplitMeshes

__all__ = ["NeutralFromPose", "PoseTransfer", "ShapeStability", "neutral_from_pose", "pose_transfer",
           "shape_stability"]


@dataclass
class NeutralFromPose:
    """(a) ids : the posed meshes. med_mm : (N,) MED of the decoded neutral to the true neutral."""

    ids: list[str]
    med_mm: np.ndarray


@dataclass
class PoseTransfer:
    """(b) pairs : (shape identity, posed mesh id). med_mm : (N,) MED to the true transferred body.
    skipped : why pairs could not be evaluated (e.g. meshes not from a generator folder)."""

    pairs: list[tuple[str, str]]
    med_mm: np.ndarray
    skipped: list[str] = field(default_factory=list)


@dataclass
class ShapeStability:
    """(c) within, between : RMS spreads of e_s (latent units); ratio = within / between (NaN when undefined).
    n_identities : identities with at least 2 meshes (within) / identities in all (between)."""

    within: float
    between: float
    ratio: float
    n_identities: int
    n_meshes: int


def _decode(model, e_s: np.ndarray, e_p: np.ndarray | None) -> np.ndarray:
    with torch.no_grad():
        es = torch.as_tensor(e_s, device=model.device)
        ep = None if e_p is None else torch.as_tensor(e_p, device=model.device)
        return model.vertices(es, ep).cpu().numpy()


def _pose_codes(model, rec: RunReconstruction) -> np.ndarray:
    return rec.z[:, model.net.latent_groups()["pose"]]


def neutral_from_pose(model, posed: SplitMeshes, rec: RunReconstruction) -> NeutralFromPose:
    """(a) for every posed test mesh; ``rec`` are the fits of ``posed``."""
    from bodydata.mesh import read_mesh

    decoded = _decode(model, rec.shape, None)
    truth = np.stack([read_mesh(r["neutral_path"]).vertices for r in posed.rows])
    return NeutralFromPose(posed.ids, med_mm(decoded, truth, rigid=True))


def pose_transfer(model, neutral: SplitMeshes, neutral_rec: RunReconstruction, posed: SplitMeshes,
                  posed_rec: RunReconstruction, max_pairs: int = 64) -> PoseTransfer:
    """(b) for pairs (A's neutral test mesh, a posed test mesh of another identity), at most ``max_pairs``."""
    from bodydata.generator.transfer import PoseTransferTruth, truth_of_mesh

    skipped: list[str] = []
    pose_truth = [truth_of_mesh(r["path"]) for r in posed.rows]
    shape_truth: dict[str, dict] = {}
    for r, t in zip(posed.rows, pose_truth):
        if t is not None:
            shape_truth.setdefault(r["identity"], t)
    pairs, idx = [], []
    for a, ra in enumerate(neutral.rows):
        for b, rb in enumerate(posed.rows):
            if rb["identity"] == ra["identity"] or len(pairs) >= max_pairs:
                continue
            if pose_truth[b] is None or ra["identity"] not in shape_truth:
                skipped.append(f"{ra['id']} x {rb['id']}: no generator truth record for one of them")
                continue
            pairs.append((ra["identity"], rb["id"]))
            idx.append((a, b))
    if not pairs:
        return PoseTransfer([], np.zeros(0), skipped)
    truth_fn = PoseTransferTruth(pose_truth[idx[0][1]]["topology"])
    a_i, b_i = np.array([i for i, _ in idx]), np.array([j for _, j in idx])
    decoded = _decode(model, neutral_rec.shape[a_i], _pose_codes(model, posed_rec)[b_i])
    truth = np.stack([truth_fn(shape_truth[neutral.rows[a]["identity"]], pose_truth[b]) for a, b in idx])
    if truth.shape != decoded.shape:
        return PoseTransfer([], np.zeros(0), skipped + [f"the generator's topology has {truth.shape[1]} vertices, "
                                                        f"the template {decoded.shape[1]}"])
    return PoseTransfer(pairs, med_mm(decoded, truth, rigid=True), skipped)


def shape_stability(shape_codes: np.ndarray, identities: list[str]) -> ShapeStability:
    """(c) shape_codes : (N, S) e_s of N meshes; identities : (N,) their identity keys."""
    e = np.asarray(shape_codes, np.float64)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(identities):
        groups[key].append(i)
    means = {k: e[v].mean(0) for k, v in groups.items()}
    dev = [e[i] - means[k] for k, v in groups.items() if len(v) >= 2 for i in v]
    within = float(np.sqrt(np.mean(np.sum(np.square(dev), 1)))) if dev else float("nan")
    m = np.stack(list(means.values()))
    between = float(np.sqrt(np.mean(np.sum((m - m.mean(0)) ** 2, 1)))) if len(m) >= 2 else float("nan")
    ratio = within / between if np.isfinite(within) and np.isfinite(between) and between > 0 else float("nan")
    return ShapeStability(within, between, ratio, len(groups), len(e))
