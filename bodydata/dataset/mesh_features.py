"""Per-mesh features for the dataset: ACAP ``f (n, 9)`` and coarse ``g (16, 9)`` of one mesh, cached by its sha256.

Cache layout: ``DATASET/cache/features-<digest>/<sha256>.npz`` (float32 ``f``, ``g``), the digest covering
the template and the extractor options, so a finished mesh is never recomputed for the same template.
Two ways to fill it: :func:`compute_inline` (this process, a progress bar) or :func:`stage_process`, the same
work in the pipeline's per-item stage protocol, which the CLI runs on local or remote dask workers.
Each process builds the :class:`~bodydata.features.acap.AcapExtractor` once per template and keeps it.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from bodydata.errors import BodydataError, MeshError
from bodydata.worker_cache import WorkerCache

__all__ = [
    "FEATURE_VERSION",
    "extractor_options",
    "template_digest",
    "feature_options",
    "get_extractor",
    "features_of_mesh",
    "stage_process",
    "compute_inline",
    "cached_path",
    "load_cached",
]

FEATURE_VERSION = "1"
DEFAULT_EXTRACTOR = {"weighting": "acap", "normal_scale": 0.3, "consistency": "fast"}

_EXTRACTORS: WorkerCache = WorkerCache("acap extractors")  # per process: template digest -> AcapExtractor


def extractor_options(**overrides) -> dict[str, Any]:
    """The AcapExtractor keyword arguments used for the dataset (defaults: the ACAP authors' weighting)."""
    opts = dict(DEFAULT_EXTRACTOR)
    opts.update({k: v for k, v in overrides.items() if v is not None})
    return opts


def template_digest(template, options: Mapping[str, Any]) -> str:
    """sha256 (hex) of the template's vertices, faces and part labels, the extractor options and the feature
    version: two builds share cached features only when all of these agree."""
    h = hashlib.sha256()
    for arr, dt in ((template.vertices, np.float64), (template.faces, np.int64), (template.part_labels, np.int64)):
        a = np.ascontiguousarray(arr, dtype=dt)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update(json.dumps({"options": dict(options), "version": FEATURE_VERSION}, sort_keys=True).encode())
    return h.hexdigest()


def get_extractor(template_spec: str, digest: str, options: Mapping[str, Any]):
    """The extractor for a template (name or folder), built once per process and checked against ``digest``."""
    def build():
        from bodydata.features.acap import AcapExtractor
        from bodydata.templates.template import load_template

        tpl = load_template(template_spec)
        got = template_digest(tpl, options)
        if got != digest:
            raise MeshError(template_spec, "template on this worker differs from the one the build started with "
                                           f"(digest {got[:12]} vs {digest[:12]})")
        return AcapExtractor(tpl.vertices, tpl.faces, tpl.part_labels, **options)

    return _EXTRACTORS.get(digest, build)


def features_of_mesh(path: str | os.PathLike, options: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, dict]:
    """``f (n, 9)``, ``g (16, 9)`` float32 of the mesh file ``path`` and a few diagnostics.

    options : :func:`feature_options` (template, its digest, extractor arguments). Raises ``MeshError`` for a
    file that cannot be read, has another connectivity than the template, or gives non-finite features.
    """
    from bodydata.mesh import read_mesh

    ex = get_extractor(options["template"], options["template_digest"], options["extractor"])
    mesh = read_mesh(path, expected_vertices=ex.n_vertices)
    v = ex.check_mesh(mesh.vertices, mesh.faces, path)
    res = ex(v, coarse=True)
    f = res.f[0].astype(np.float32)
    g = res.g[0].astype(np.float32)
    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(g))):
        raise MeshError(path, "ACAP features are not finite (degenerate triangles?)")
    return f, g, {"axis_cost": float(res.axis_cost[0]), "turn_cost": float(res.turn_cost[0])}


def feature_options(template_spec: str, digest: str, extractor: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-serialisable options every feature computation of one build shares."""
    return {"template": str(template_spec), "template_digest": digest, "extractor": dict(extractor)}


def cached_path(cache_dir: str | os.PathLike, key: str) -> Path:
    return Path(cache_dir) / f"{key}.npz"


def write_cached(path: str | os.PathLike, f: np.ndarray, g: np.ndarray) -> None:
    """Write ``f``, ``g`` to ``path`` (an npz; the caller makes it atomic)."""
    with open(path, "wb") as fh:
        np.savez(fh, f=f, g=g)


def load_cached(cache_dir: str | os.PathLike, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``f (n, 9)``, ``g (16, 9)`` float32 of a cached mesh."""
    with np.load(cached_path(cache_dir, key)) as z:
        return z["f"], z["g"]


def stage_process(item, ctx) -> dict[str, Any]:
    """Per-item function in the pipeline's stage protocol (``bodydata.pipeline.stage.Stage.process``):
    ``item.key`` = the mesh's sha256, ``item.inputs[0]`` = its path, ``ctx.options`` = :func:`feature_options`;
    writes ``<key>.npz`` through ``ctx.output``. Bad meshes raise ``MeshError`` (a failed row, not retried)."""
    f, g, info = features_of_mesh(item.inputs[0], ctx.options)
    with ctx.output(f"{item.key}.npz") as tmp:
        write_cached(tmp, f, g)
    return info


#: Errors of one mesh that must not stop a build: recorded as that mesh's failure.
MESH_ERRORS = (BodydataError, ValueError, FloatingPointError, np.linalg.LinAlgError)


def compute_inline(jobs: Iterable[tuple[str, str]], cache_dir: str | os.PathLike, options: Mapping[str, Any],
                   progress: bool = True, total: int | None = None) -> dict[str, str]:
    """Compute and cache the features of ``jobs`` (``(key, mesh path)`` pairs) in this process, with a progress
    bar; returns ``{key: reason}`` of the meshes that failed. The default feature runner of a build."""
    from tqdm.auto import tqdm

    from bodydata.fsutil import atomic_path

    failed: dict[str, str] = {}
    for key, path in tqdm(jobs, total=total, desc="features", unit="mesh", disable=not progress):
        try:
            f, g, _ = features_of_mesh(path, options)
        except MESH_ERRORS as exc:
            failed[key] = " ".join(str(exc).split()) or type(exc).__name__
            continue
        with atomic_path(cached_path(cache_dir, key)) as tmp:
            write_cached(tmp, f, g)
    return failed
