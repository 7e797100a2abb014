"""Building priors from training bodies (generated anny bodies or a manifest's meshes): one per K, with a report.

``bodydata prior build`` and the convert stage both call :func:`build_priors`; each prior can be measured (held-out
and training MED) and a JSON report is written beside them.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from bodydata.registration.prior import PriorError

if TYPE_CHECKING:
    from bodydata.templates.template import Template

__all__ = ["PriorTraining", "PriorEntry", "PriorReport", "anny_training", "manifest_training", "build_priors",
           "build_template_priors", "prior_paths"]


@dataclass
class PriorTraining:
    """Training bodies (N, n, 3) float64 and held-out bodies (M, n, 3) float64 (M may be 0), template frame, metres."""

    train: np.ndarray
    heldout: np.ndarray


@dataclass
class PriorEntry:
    """One built prior: K, its file, the fraction of non-zeros of its basis and, when measured, mean MEDs (mm)."""

    K: int
    path: str
    nnz_fraction: float
    heldout_med_mm: float | None = None
    heldout_med_max_mm: float | None = None
    acap_roundtrip_med_mm: float | None = None
    train_med_mm: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class PriorReport:
    """What :func:`build_priors` wrote (also saved as ``<stem>.json``)."""

    template: str
    n_train: int
    n_heldout: int
    falloff_m: float
    weighting: str
    priors: list[PriorEntry] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["priors"] = [p.as_dict() for p in self.priors]
        return d


def anny_training(template: Template, identities: int, poses: int, heldout_identities: int = 0,
                  seed: int = 0) -> PriorTraining:
    """``identities x poses`` generated anny bodies in the template's topology, and ``heldout_identities x poses``
    more from identities never trained on (numbered from 10,000). PriorError for a template that is not anny's."""
    from bodydata.generator.bodies import anny_bodies

    topo = (template.meta or {}).get("anny_topology")
    if not topo:
        raise PriorError(f"template {template.name!r} is not an anny template: train on a manifest of meshes")
    train = anny_bodies(topo, identities, poses, seed=seed).vertices[topo]
    held = (anny_bodies(topo, heldout_identities, poses, seed=seed, first_identity=10_000).vertices[topo]
            if heldout_identities else np.zeros((0, template.n_vertices, 3)))
    return PriorTraining(train, held)


def manifest_training(template: Template, manifest: str | Path, heldout: float = 0.15, seed: int = 0) -> PriorTraining:
    """The meshes of a manifest's usable rows (``path`` column; status done, legacy ok or empty), all in the
    template's connectivity, each turned rigidly onto the template (ACAP features see the global rotation);
    a random ``heldout`` fraction of them held out. PriorError when the manifest lists no mesh."""
    from bodydata.mesh import read_mesh
    from bodydata.registration.register import similarity_from_points
    from bodydata.registration.source_manifest import done_mesh_paths

    paths = done_mesh_paths(manifest)
    if not paths:
        raise PriorError(f"{manifest}: no meshes (rows with a path and status done)")
    allv = np.stack([read_mesh(p, expected_vertices=template.n_vertices).vertices for p in paths])
    for b in range(len(allv)):
        _, rot, t = similarity_from_points(allv[b], template.vertices, scale=False)
        allv[b] = allv[b] @ rot.T + t
    perm = np.random.default_rng(seed).permutation(len(allv))
    n_test = int(round(heldout * len(allv)))
    return PriorTraining(allv[perm[n_test:]], allv[perm[:n_test]])


def prior_paths(out: str | Path, ks: Sequence[int]) -> list[Path]:
    """Where the prior of each K goes: ``out`` itself for one K, else ``<stem>_K<k>.npz`` beside it."""
    outp = Path(out)
    if len(ks) == 1:
        return [outp]
    return [outp.with_name(f"{outp.stem}_K{k}{outp.suffix or '.npz'}") for k in ks]


def build_priors(template: Template, training: PriorTraining, ks: Sequence[int], out: str | Path,
                 falloff: float = 0.05, weighting: str = "acap", measure: bool = True,
                 settings: Mapping[str, Any] | None = None, progress=None) -> PriorReport:
    """One prior per K from the training bodies' ACAP features, saved at :func:`prior_paths`; the report goes to
    ``<out stem>.json``. measure : held-out MED and the MED of (up to) 20 training bodies per prior (mm).
    settings : recorded in the report as they are (a caller's key for reusing the file). progress : optional
    callable(str) told what happens. Raises PriorError when a prior cannot be built (too few bodies for K)."""
    from bodydata.features.acap import AcapExtractor
    from bodydata.fsutil import atomic_write_text
    from bodydata.registration.prior import build_prior, expression_med

    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    train, held = training.train, training.heldout
    say(f"{len(train)} training and {len(held)} held-out meshes; extracting ACAP features ...")
    ex = AcapExtractor(template.vertices, template.faces, weighting=weighting)
    f_train = ex(train).f
    f_test = ex(held).f if len(held) else None
    report = PriorReport(template.name, len(train), len(held), float(falloff), weighting,
                         settings=dict(settings or {}))
    for k, dst in zip(ks, prior_paths(out, ks)):
        pr = build_prior(f_train, template.vertices, template.faces, template.part_labels, k, template.name, falloff,
                         weighting=weighting)
        pr.save(dst)
        entry = PriorEntry(k, str(dst), pr.basis.nnz / float(np.prod(pr.basis.shape)))
        if measure and f_test is not None:
            m = expression_med(pr, f_test, held, template.vertices, template.faces)
            entry.heldout_med_mm = float(m["med_mm"].mean())
            entry.heldout_med_max_mm = float(m["med_mm"].max())
            entry.acap_roundtrip_med_mm = float(m["floor_mm"].mean())
        if measure:
            mt = expression_med(pr, f_train[:20], train[:20], template.vertices, template.faces)
            entry.train_med_mm = float(mt["med_mm"].mean())
        report.priors.append(entry)
        say(json.dumps(entry.as_dict()))
    report.seconds = round(time.perf_counter() - t0, 1)
    atomic_write_text(Path(out).with_suffix(".json"), json.dumps(report.as_dict(), indent=2) + "\n")
    return report


def build_template_priors(template: str, ks: Sequence[int], out: str | Path, manifest: str | Path | None = None,
                          anny_identities: int | None = None, anny_poses: int = 5, heldout_identities: int = 3,
                          heldout: float = 0.15, falloff: float = 0.05, weighting: str = "acap", seed: int = 0,
                          progress=None) -> PriorReport:
    """``bodydata prior build``: priors of the template (folder or built-in name) trained on exactly one of the
    manifest's meshes (:func:`manifest_training`) or ``anny_identities x anny_poses`` generated anny bodies
    (:func:`anny_training`), built and measured by :func:`build_priors`. PriorError when it cannot start."""
    from bodydata.templates.template import load_template

    if (manifest is None) == (anny_identities is None):
        raise PriorError("give exactly one of a manifest or a number of anny identities")
    tpl = load_template(template)
    training = (anny_training(tpl, anny_identities, anny_poses, heldout_identities, seed) if manifest is None
                else manifest_training(tpl, manifest, heldout, seed))
    return build_priors(tpl, training, ks, out, falloff, weighting, progress=progress)
