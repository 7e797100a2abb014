"""Per-mesh feature stage: ACAP ``f (n, 9)`` and coarse ``g (16, 9)`` of one mesh, cached by the mesh's sha256.

The stage (:func:`feature_stage`) runs through :func:`bodydata.pipeline.orchestrate.run_stage`: one item per
distinct mesh file (key = the file's sha256), output ``<sha256>.npz`` holding ``f`` and ``g`` as float32,
in a cache folder keyed by the template and the extractor options
(``DATASET/cache/features-<digest>/``). The stage manifest there makes a re-run skip finished meshes.
Each worker process builds the :class:`~bodydata.features.acap.AcapExtractor` once per template and keeps it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from bodydata.errors import MeshError

__all__ = [
    "FEATURE_VERSION",
    "extractor_options",
    "template_digest",
    "feature_stage",
    "compute_mesh_features",
    "write_items_file",
    "load_cached",
    "get_extractor",
]

FEATURE_VERSION = "1"
ITEMS_FILE = "items.json"
DEFAULT_EXTRACTOR = {"weighting": "acap", "normal_scale": 0.3, "consistency": "fast"}

_EXTRACTORS: dict[str, Any] = {}  # per process: template digest -> AcapExtractor


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
    ex = _EXTRACTORS.get(digest)
    if ex is None:
        from bodydata.features.acap import AcapExtractor
        from bodydata.templates.template import load_template

        tpl = load_template(template_spec)
        got = template_digest(tpl, options)
        if got != digest:
            raise MeshError(template_spec, "template on this worker differs from the one the build started with "
                                           f"(digest {got[:12]} vs {digest[:12]})")
        ex = AcapExtractor(tpl.vertices, tpl.faces, tpl.part_labels, **options)
        _EXTRACTORS[digest] = ex
    return ex


def compute_mesh_features(item, ctx) -> dict[str, Any]:
    """Stage ``process``: read ``item.inputs[0]``, compute ``f (n, 9)`` and ``g (16, 9)``, write
    ``<item.key>.npz`` (float32 ``f``, ``g``). Bad meshes raise ``MeshError`` (a failed row, not retried)."""
    opts = ctx.options
    ex = get_extractor(opts["template"], opts["template_digest"], opts["extractor"])
    path = item.inputs[0]
    from bodydata.mesh import read_mesh

    mesh = read_mesh(path, expected_vertices=ex.n_vertices)
    v = ex.check_mesh(mesh.vertices, mesh.faces, path)
    res = ex(v, coarse=True)
    f = res.f[0].astype(np.float32)
    g = res.g[0].astype(np.float32)
    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(g))):
        raise MeshError(path, "ACAP features are not finite (degenerate triangles?)")
    with ctx.output(f"{item.key}.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, f=f, g=g)
    return {"axis_cost": float(res.axis_cost[0]), "turn_cost": float(res.turn_cost[0])}


def _items_from_file(path: str, ctx) -> Iterable:
    from bodydata.pipeline.stage import Item

    with open(path, encoding="utf-8") as fh:
        entries = json.load(fh)
    return [Item(key=e["key"], inputs=(e["path"],)) for e in entries]


def write_items_file(cache_dir: str | os.PathLike, items: Mapping[str, str]) -> Path:
    """Write ``{sha256: mesh path}`` as the stage's item list (``items.json`` in the cache folder)."""
    from bodydata.fsutil import atomic_write_text

    path = Path(cache_dir) / ITEMS_FILE
    entries = [{"key": k, "path": str(p)} for k, p in items.items()]
    atomic_write_text(path, json.dumps(entries, indent=0) + "\n")
    return path


def feature_stage(template_spec: str, digest: str, options: Mapping[str, Any], items_file: str | os.PathLike):
    """The :class:`~bodydata.pipeline.stage.Stage` computing features of the meshes listed in ``items_file``."""
    from bodydata.pipeline.stage import Stage

    return Stage(
        name="dataset-features",
        process=compute_mesh_features,
        items=functools.partial(_items_from_file, str(items_file)),
        options={"template": str(template_spec), "template_digest": digest, "extractor": dict(options)},
        version=FEATURE_VERSION,
        description="ACAP f (n, 9) and coarse g (16, 9) of each mesh, float32",
    )


def load_cached(cache_dir: str | os.PathLike, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``f (n, 9)``, ``g (16, 9)`` float32 of a cached mesh."""
    with np.load(Path(cache_dir) / f"{key}.npz") as z:
        return z["f"], z["g"]
