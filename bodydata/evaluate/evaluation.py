"""``bodydata evaluate``'s work: every run given on one dataset's test split -> Table 2, disentanglement, figures, report.

:func:`evaluate_runs` is the one call; the tables and files are written by :mod:`bodydata.evaluate.report`.
A run that cannot be evaluated (unloadable, another template) is recorded as failed and the others go on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from bodydata.errors import BodydataError
from bodydata.evaluate.fit import FitSettings, MeshFitter
from bodydata.evaluate.reconstruction import (RunReconstruction, check_compatible, load_test_meshes,
                                              reconstruct_test_meshes, run_info)

__all__ = ["RunEvaluation", "Evaluation", "evaluate_runs"]


@dataclass
class RunEvaluation:
    """One run's results: info (:func:`run_info`), reconstructions per role, disentanglement results (or None for a
    single-latent model), sparse-marker fits per role (Table 5; empty without markers), error (why it failed, or
    '')."""

    info: dict
    reconstructions: dict[str, RunReconstruction] = field(default_factory=dict)
    neutral_from_pose: object | None = None
    pose_transfer: object | None = None
    shape_stability: object | None = None
    sparse: dict = field(default_factory=dict)
    error: str = ""


@dataclass
class Evaluation:
    """dataset : its folder; dataset_name, split; settings : the fits' settings; runs : one per run given;
    files : what was written; markers : the Table-5 marker set's name (None: no sparse-marker fits)."""

    dataset: Path
    dataset_name: str
    split: str
    settings: FitSettings
    runs: list[RunEvaluation]
    files: list[Path] = field(default_factory=list)
    markers: str | None = None

    @property
    def n_failed(self) -> int:
        return sum(bool(r.error) for r in self.runs)


def _evaluate_one(run: Path, meshes: dict, settings: FitSettings, batch_size: int, device: str | None,
                  dataset: Path, markers: str | None = None) -> RunEvaluation:
    from bodydata.evaluate import disentangle
    from bodydata.model import load

    info = run_info(run)
    check_compatible(run, dataset)
    # the final weights: the run's "best" checkpoint was chosen on this very test split
    model = load(run, checkpoint="last", device=device)
    fitter = MeshFitter(model, settings)
    out = RunEvaluation(info)
    for role, m in meshes.items():
        out.reconstructions[role] = reconstruct_test_meshes(fitter, m, batch_size)
    if model.disentangled and "pose" in meshes:
        posed, prec = meshes["pose"], out.reconstructions["pose"]
        out.neutral_from_pose = disentangle.neutral_from_pose(model, posed, prec)
        if "neutral" in meshes:
            out.pose_transfer = disentangle.pose_transfer(model, meshes["neutral"], out.reconstructions["neutral"],
                                                          posed, prec)
        shapes = [r.shape for r in out.reconstructions.values()]
        ids = [row["identity"] for m in meshes.values() for row in m.rows]
        out.shape_stability = disentangle.shape_stability(np.concatenate(shapes), ids)
    if markers:
        _sparse_markers(out, model, meshes, markers, settings, batch_size)
    return out


def _anny_topology(spec: str | None) -> str | None:
    from bodydata.evaluate.body_model import anny_topology_of

    return anny_topology_of(spec)


def _evaluate_body_model(meshes: dict, spec: str, batch_size: int, device: str | None) -> RunEvaluation:
    """The body-model row: anny fitted to the test meshes, with (a)-(c) (phenotype as e_s, joint angles as e_p)."""
    from bodydata.evaluate import disentangle
    from bodydata.device import pick_device
    from bodydata.evaluate.body_model import BODY_MODEL_RUN, AnnyAsEmbedding, body_model_reconstructions

    topo = _anny_topology(spec)
    info = {"run": BODY_MODEL_RUN, "path": "", "arch": "anny (phenotype + joint angles, fitted)", "epochs": "",
            "checkpoint": "", "template": spec}
    dev = pick_device(device)
    out = RunEvaluation(info, body_model_reconstructions(meshes, topo, max(1, batch_size), dev))
    model = AnnyAsEmbedding(topo, dev)
    if "pose" in meshes:
        posed, prec = meshes["pose"], out.reconstructions["pose"]
        out.neutral_from_pose = disentangle.neutral_from_pose(model, posed, prec)
        if "neutral" in meshes:
            out.pose_transfer = disentangle.pose_transfer(model, meshes["neutral"], out.reconstructions["neutral"],
                                                          posed, prec)
    ids = [row["identity"] for m in meshes.values() for row in m.rows]
    out.shape_stability = disentangle.shape_stability(
        np.concatenate([r.shape for r in out.reconstructions.values()]), ids)
    return out


def _sparse_markers(out: RunEvaluation, model, meshes: dict, markers: str, settings: FitSettings,
                    batch_size: int) -> None:
    """Table 5: each test set fitted again from the marker vertices alone."""
    from bodydata.evaluate.fit_files import resolve_markers
    from bodydata.evaluate.sparse_markers import marker_set_name, sparse_marker_fit
    from bodydata.templates.template import load_template

    ids = resolve_markers(markers, load_template(model.template))
    for role, m in meshes.items():
        out.sparse[role] = sparse_marker_fit(model, m, ids, marker_set_name(markers), settings, batch_size)


def _unique_names(runs: list[RunEvaluation]) -> None:
    """Runs are named by folder in tables and file names; two folders of one name (a/dhnn, b/dhnn) get their parent's
    name in front so that neither overwrites the other's figures."""
    from collections import Counter

    count = Counter(r.info.get("run") for r in runs)
    for r in runs:
        if count[r.info.get("run")] > 1:
            p = Path(r.info.get("path", r.info.get("run", "")))
            r.info["run"] = f"{p.parent.name}_{p.name}"


def evaluate_runs(runs: Sequence[str | os.PathLike], dataset: str | os.PathLike, out: str | os.PathLike,
                  settings: FitSettings = FitSettings(), split: str = "test", batch_size: int = 8,
                  device: str | None = None, figures: bool = True,
                  progress: Callable[[str], None] | None = None, markers: str | None = "landmarks",
                  body_model: bool = True) -> Evaluation:
    """Evaluate each run on the ``split`` meshes of ``dataset`` and write the report into ``out``.
    markers : the sparse-marker set of Table 5 (``landmarks``: the template's; a landmark CSV; None: skip).
    body_model : add the row of anny itself fitted to the same meshes (anny templates only;
    :mod:`bodydata.evaluate.body_model`).
    Raises BodydataError when it cannot start (no dataset, empty split, no runs)."""
    from bodydata.dataset.format import read_card
    from bodydata.evaluate.report import write_report

    if not runs:
        raise BodydataError("give at least one --run")
    dataset = Path(dataset)
    card = read_card(dataset)
    meshes = load_test_meshes(dataset, split)
    ev = Evaluation(dataset, card.get("name") or dataset.name, split, settings, [], markers=markers)
    for run in runs:
        if progress:
            progress(str(run))
        try:
            ev.runs.append(_evaluate_one(Path(run), meshes, settings, batch_size, device, dataset, markers))
        except BodydataError as exc:
            ev.runs.append(RunEvaluation({"run": Path(run).name, "path": str(run)}, error=" ".join(str(exc).split())))
    spec = (card.get("template") or {}).get("spec")
    if body_model and _anny_topology(spec):
        if progress:
            progress("anny (body model)")
        try:
            ev.runs.append(_evaluate_body_model(meshes, spec, batch_size, device))
        except BodydataError as exc:  # the runs' rows still stand
            ev.runs.append(RunEvaluation({"run": "anny-body-model", "path": ""}, error=" ".join(str(exc).split())))
    _unique_names(ev.runs)
    ev.files = write_report(ev, meshes, Path(out), figures=figures)
    return ev
