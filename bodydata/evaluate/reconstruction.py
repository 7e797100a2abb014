"""Table 2: how well each trained embedding reconstructs the dataset's test meshes, by Eq. 15 and by the encoder alone.

For every test mesh (neutral set and pose set, the dataset's ``pairs.csv`` roles) the codes are fitted by Eq. 15
starting from the encoder's posterior means (:class:`~bodydata.evaluate.fit.MeshFitter`); the MED after the fit's
own R, t is the ``fit`` error (alignment "rigid"), and the encoder's codes decoded and Kabsch-aligned give the
``encoder`` error.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bodydata.errors import BodydataError
from bodydata.evaluate.fit import MeshFitter
from bodydata.evaluate.metrics import vertex_errors_mm

__all__ = ["EvaluateError", "SplitMeshes", "RunReconstruction", "load_test_meshes", "check_compatible",
           "reconstruct_test_meshes", "run_info"]


class EvaluateError(BodydataError):
    """A run and a dataset that cannot be evaluated together, or an empty test split."""


@dataclass
class SplitMeshes:
    """The test meshes of one role. rows : their ``pairs.csv`` rows. f : (N, n, 9) float32 raw ACAP features.
    vertices : (N, n, 3) float64 metres (read from each row's ``path``)."""

    role: str
    rows: list[dict[str, str]]
    f: np.ndarray
    vertices: np.ndarray

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.rows]


@dataclass
class RunReconstruction:
    """One run's errors on one role's test meshes.

    fit_mm, encoder_mm : (N,) MED per mesh.  fit_vertex_mm : (N, n) per-vertex errors of the fit (CED, error maps).
    fitted : (N, n, 3) fitted meshes (metres, in the targets' frame).  z : (N, L) fitted codes; shape : (N, S) or None.
    iterations : (N,) fit steps per mesh (Adam or LM).  seconds : (N,) fit time per mesh.
    """

    role: str
    fit_mm: np.ndarray
    encoder_mm: np.ndarray
    fit_vertex_mm: np.ndarray
    fitted: np.ndarray
    z: np.ndarray
    shape: np.ndarray | None
    seconds: np.ndarray
    iterations: np.ndarray
    extra: dict = field(default_factory=dict)


def load_test_meshes(dataset: str | os.PathLike, split: str = "test") -> dict[str, SplitMeshes]:
    """{role: SplitMeshes} of one split of a built dataset (roles with no rows are left out)."""
    from bodydata.dataset.format import FILES, ROLES, read_card, read_pairs
    from bodydata.mesh import read_mesh

    root = Path(dataset)
    card = read_card(root)
    n = int(card["template"]["n_vertices"]) if "n_vertices" in card.get("template", {}) else None
    rows = [r for r in read_pairs(root) if split == "all" or r["split"] == split]
    f_all = np.load(root / FILES["f"], mmap_mode="r")
    out = {}
    for role in ROLES:
        rr = [r for r in rows if r["role"] == role]
        if not rr:
            continue
        verts = np.stack([read_mesh(r["path"], expected_vertices=n).vertices for r in rr])
        out[role] = SplitMeshes(role, rr, np.asarray(f_all[[int(r["index"]) for r in rr]], np.float32), verts)
    if not out:
        raise EvaluateError(f"{root}: the {split} split has no meshes")
    return out


def run_info(run: str | os.PathLike) -> dict:
    """What a report says about a run: name, arch, epochs finished, best epoch, template and dataset digests."""
    from bodydata.model.embedding import read_run_config
    from bodydata.model.run_format import read_run_card

    run = Path(run)
    cfg = read_run_config(run)
    card = read_run_card(run)
    return {"run": run.name, "path": str(run), "arch": cfg["arch"], "epochs": card.get("epochs_finished"),
            "checkpoint": f"last (epoch {card.get('epochs_finished')})", "template": card.get("template", {}).get("spec"),
            "template_digest": card.get("template", {}).get("digest"),
            "dataset_digest": card.get("dataset", {}).get("digest")}


def check_compatible(run: str | os.PathLike, dataset: str | os.PathLike) -> None:
    """EvaluateError (one line) when the run was trained for another template than the dataset's."""
    from bodydata.dataset.format import read_card

    info = run_info(run)
    tpl = read_card(dataset).get("template", {})
    if info["template_digest"] and tpl.get("digest") and info["template_digest"] != tpl["digest"]:
        raise EvaluateError(f"{run}: trained for another template (digest {info['template_digest'][:12]}) than the "
                            f"dataset {dataset} ({tpl.get('name')}, digest {tpl['digest'][:12]})")


def reconstruct_test_meshes(fitter: MeshFitter, meshes: SplitMeshes, batch_size: int = 8) -> RunReconstruction:
    """Fit every mesh of ``meshes`` (Eq. 15 from the encoder's codes) and measure fit and encoder-only MED."""
    if fitter.settings.init != "encoder":
        raise EvaluateError("Table 2 fits start from the encoder's codes (FitSettings.init = 'encoder')")
    parts = []
    for b0 in range(0, len(meshes.rows), max(1, batch_size)):
        sl = slice(b0, b0 + batch_size)
        parts.append(fitter.fit(meshes.vertices[sl], meshes.f[sl]))
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    fitted = cat("vertices")
    return RunReconstruction(
        role=meshes.role, fit_mm=cat("med_mm"), encoder_mm=cat("start_med_mm"),
        fit_vertex_mm=vertex_errors_mm(fitted, meshes.vertices), fitted=fitted, z=cat("z"),
        shape=cat("shape") if parts[0].shape is not None else None, seconds=cat("seconds"),
        iterations=cat("iterations"))
