"""Build the paired training set: features of every mesh, pairs, split, memory-mappable float32 arrays, scaling, card.

Output folder: :mod:`bodydata.dataset.format` (names, columns) and ``docs/dataset.md``.

Every neutral mesh is its own pair, so ``f_s`` is never stored twice: ``f_s[i] = f[neutral_index[i]]``.
Arrays are written row by row into a memory map (a temporary name, renamed when complete), so RAM does
not grow with the number of pairs.
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from bodydata.dataset.mesh_features import (
    cached_path,
    compute_inline,
    extractor_options,
    feature_options,
    load_cached,
    template_digest,
)
from bodydata.dataset.format import DATASET_FORMAT, DATASET_VERSION, FAILURE_COLUMNS, FILES, PAIR_COLUMNS
from bodydata.dataset.pairing import Failure, Pairing, drop_failed, pair_meshes, read_inputs
from bodydata.dataset.split import make_split
from bodydata.errors import BodydataError
from bodydata.fsutil import atomic_path, atomic_write_text, sha256_file

__all__ = ["FeatureRunner", "FeatureCounts", "BuildResult", "build_dataset", "run_features", "assemble_arrays"]


@dataclass
class BuildResult:
    """What a build produced: the folder, pair counts, the failures and the feature stage's summary."""

    out: Path
    n_pairs: int
    counts: dict[str, Any]
    failures: list[Failure]
    features: "FeatureCounts | None" = None
    seconds: float = 0.0
    bytes_on_disk: dict[str, int] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- features
def _hash_inputs(pairing: Pairing, progress: bool) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(mesh id -> sha256, sha256 -> path, mesh id -> failure reason). A file whose bytes differ from the
    manifest's sha256 fails: its manifest row no longer describes it."""
    from tqdm.auto import tqdm

    shas: dict[str, str] = {}
    items: dict[str, str] = {}
    failed: dict[str, str] = {}
    for m in tqdm(pairing.meshes, desc="hash meshes", unit="mesh", disable=not progress, leave=False):
        try:
            sha = sha256_file(m.path)
        except OSError as exc:
            failed[m.id] = f"{m.path}: cannot read ({exc.strerror or exc})"
            continue
        if m.sha256 and m.sha256 != sha:
            failed[m.id] = f"{m.path}: file changed since the manifest was written (sha256 {sha[:12]} vs {m.sha256[:12]})"
            continue
        shas[m.id] = sha
        items.setdefault(sha, m.path)
    return shas, items, failed


#: ``runner(jobs, cache_dir, options, progress) -> {key: reason}``: computes the features of ``jobs`` (a list of
#: ``(sha256, mesh path)``) into ``cache_dir`` (``<sha256>.npz``) and returns the failures.
#: :func:`bodydata.dataset.mesh_features.compute_inline` is the default.
FeatureRunner = Callable[[list, Path, dict, bool], dict]


@dataclass
class FeatureCounts:
    """Meshes of a build: ``cached`` (found in the cache), ``computed`` now, ``failed`` now."""

    total: int = 0
    cached: int = 0
    computed: int = 0
    failed: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return f"{self.computed} computed, {self.cached} cached, {self.failed} failed"


def run_features(items: dict[str, str], cache_dir: Path, options: dict, runner: FeatureRunner | None = None,
                 progress: bool = True) -> tuple[FeatureCounts, dict[str, str]]:
    """Compute the features of ``items`` (sha256 -> mesh path) missing from ``cache_dir``; a mesh already cached
    (same bytes, same template and options) is not recomputed, a failed one is tried again.
    Returns the counts and ``{sha256: reason}`` of the failures."""
    t0 = time.perf_counter()
    cache_dir.mkdir(parents=True, exist_ok=True)
    todo = [(k, p) for k, p in items.items() if not cached_path(cache_dir, k).is_file()]
    failed = dict((runner or compute_inline)(todo, cache_dir, options, progress)) if todo else {}
    for k, _ in todo:
        if k not in failed and not cached_path(cache_dir, k).is_file():
            failed[k] = "the feature runner wrote no output for this mesh"
    counts = FeatureCounts(len(items), len(items) - len(todo), len(todo) - len(failed), len(failed),
                           time.perf_counter() - t0)
    return counts, failed


# ----------------------------------------------------------------------------------------------- arrays
def assemble_arrays(out: Path, cache_dir: Path, keys: Sequence[str], train_rows: np.ndarray,
                    n_vertices: int, n_parts: int = 16, progress: bool = True) -> dict[str, np.ndarray]:
    """Stream cached per-mesh features into ``f.npy (P, n, 9)`` and ``g.npy (P, 16, 9)`` float32 memory maps.

    keys : (P,) cache key (sha256) of each row. train_rows : (P,) bool, the rows the scaling is fitted on.
    Returns the per-dimension min/max over ``train_rows``: ``f_min``, ``f_max`` (n, 9), ``g_min``, ``g_max`` (16, 9),
    float64.
    """
    from numpy.lib.format import open_memmap
    from tqdm.auto import tqdm

    p = len(keys)
    stats = {
        "f_min": np.full((n_vertices, 9), np.inf), "f_max": np.full((n_vertices, 9), -np.inf),
        "g_min": np.full((n_parts, 9), np.inf), "g_max": np.full((n_parts, 9), -np.inf),
    }
    with atomic_path(out / FILES["f"]) as tmp_f, atomic_path(out / FILES["g"]) as tmp_g:
        fm = open_memmap(tmp_f, mode="w+", dtype=np.float32, shape=(p, n_vertices, 9))
        gm = open_memmap(tmp_g, mode="w+", dtype=np.float32, shape=(p, n_parts, 9))
        for i, key in enumerate(tqdm(keys, desc="assemble", unit="pair", disable=not progress, leave=False)):
            f, g = load_cached(cache_dir, key)
            if f.shape != (n_vertices, 9) or g.shape != (n_parts, 9):
                raise BodydataError(f"{cache_dir / key}.npz: features have shapes {f.shape}, {g.shape}; "
                                    f"expected ({n_vertices}, 9), ({n_parts}, 9)")
            fm[i] = f
            gm[i] = g
            if train_rows[i]:
                np.minimum(stats["f_min"], f, out=stats["f_min"])
                np.maximum(stats["f_max"], f, out=stats["f_max"])
                np.minimum(stats["g_min"], g, out=stats["g_min"])
                np.maximum(stats["g_max"], g, out=stats["g_max"])
        fm.flush()
        gm.flush()
        del fm, gm
    return stats


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, arr)


# ----------------------------------------------------------------------------------------------- tables
def _csv_text(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue()


def _pair_rows(pairing: Pairing, split: np.ndarray, shas: dict[str, str]) -> list[list[Any]]:
    rows = []
    for i, (m, j) in enumerate(zip(pairing.meshes, pairing.neutral_index)):
        n = pairing.meshes[j]
        rows.append([i, m.id, m.role, split[i], m.source, m.subject, m.pose, m.identity, j, n.id, m.path,
                     shas[m.id], n.path, shas[n.id], m.manifest])
    return rows


def _counts(pairing: Pairing, split: np.ndarray) -> dict[str, Any]:
    """Pairs per source, role and split (the paper's Table 1 counts meshes per source and role)."""
    table: dict[str, dict[str, int]] = {}
    for m, s in zip(pairing.meshes, split):
        d = table.setdefault(m.source, Counter())
        d[f"{m.role}_{s}"] += 1
        d[m.role] += 1
        d["total"] += 1
    keys = ["neutral", "pose", "neutral_train", "neutral_test", "pose_train", "pose_test", "total"]
    by_source = {src: {k: int(table[src].get(k, 0)) for k in keys} for src in sorted(table)}
    totals = {k: sum(v[k] for v in by_source.values()) for k in keys}
    identities = {s: len({m.identity for m, sp in zip(pairing.meshes, split) if sp == s}) for s in ("train", "test")}
    return {"by_source": by_source, "total": totals, "identities": identities,
            "identities_in_both": len({m.identity for m, sp in zip(pairing.meshes, split) if sp == "train"}
                                      & {m.identity for m, sp in zip(pairing.meshes, split) if sp == "test"})}


def _versions() -> dict[str, str]:
    import importlib.metadata

    import bodydata

    out = {"bodydata": bodydata.__version__, "numpy": np.__version__, "python": platform.python_version()}
    for pkg in ("anny",):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _card_md(card: dict) -> str:
    c = card["counts"]
    lines = [f"# Dataset card: {card['name']}", "",
             f"{c['total']['total']} pairs ({c['total']['neutral']} neutral, {c['total']['pose']} pose) from "
             f"{len(card['inputs'])} manifest(s); template `{card['template']['name']}` "
             f"({card['template']['n_vertices']} vertices, {card['template']['n_faces']} faces).", "",
             "## Pairs per source (like the paper's Table 1)", "",
             "| source | neutral | pose | neutral train | neutral test | pose train | pose test | total |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    keys = ["neutral", "pose", "neutral_train", "neutral_test", "pose_train", "pose_test", "total"]
    for src, d in c["by_source"].items():
        lines.append(f"| {src} | " + " | ".join(str(d[k]) for k in keys) + " |")
    lines.append("| **all** | " + " | ".join(f"**{c['total'][k]}**" for k in keys) + " |")
    sp = card["split"]
    lines += ["", "## Split", "",
              f"Method `{sp['method']}`, seed {sp['seed']}, "
              + (f"test identities: those matching `{sp['test_subjects']}`." if sp.get("test_subjects") else
                 f"requested test pairs: {sp['n_test_neutral']} neutral, {sp['n_test_pose']} pose.")
              + f" Identities: {c['identities']['train']} train, {c['identities']['test']} test, "
              f"{c['identities_in_both']} in both.", "",
              "## Features and scaling", "",
              f"`f.npy` {card['files']['f']['shape']} and `g.npy` {card['files']['g']['shape']} float32, unscaled "
              f"(layout per vertex: {', '.join(card['features']['layout'])}); f_s / g_s = rows `neutral_index`. "
              f"Extractor: {json.dumps(card['features']['extractor'])}.",
              f"Scaling to [{card['scaling']['range'][0]}, {card['scaling']['range'][1]}] per dimension, fitted on the "
              f"{card['scaling']['fitted_on_meshes']} meshes of the train split (pair meshes and their neutrals); "
              f"{card['scaling']['constant_dims_f']} constant dimensions of f and {card['scaling']['constant_dims_g']} "
              "of g are mapped to 0.", "",
              "## Failures", "",
              f"{card['failures']['total']} input rows left out"
              + "".join(f"; {k}: {v}" for k, v in card["failures"]["by_stage"].items()) + " (see `failures.csv`).", "",
              "## Inputs", ""]
    for inp in card["inputs"]:
        # relative to the dataset folder, so the card reads the same wherever the runs folder is moved
        rel = os.path.relpath(inp["path"], card.get("_root", "."))
        lines.append(f"- `{rel}` ({inp['role']}, sha256 {inp['sha256'][:16]}...)")
    lines += ["", "## Files", ""]
    for name, info in card["files"].items():
        lines.append(f"- `{info['file']}`: {info['bytes']:,} bytes" + (f", {info['shape']} {info['dtype']}" if "shape" in info else ""))
    lines += ["", "## Versions", "", ", ".join(f"{k} {v}" for k, v in card["versions"].items()), ""]
    return "\n".join(lines)


def _file_info(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = {"file": path.name, "bytes": path.stat().st_size}
    if path.suffix == ".npy":
        arr = np.load(path, mmap_mode="r")
        info.update(shape=list(arr.shape), dtype=str(arr.dtype))
        del arr
    return info


def _dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------------------------- build
def build_dataset(
    inputs: Sequence[str | os.PathLike],
    template: str | os.PathLike,
    out: str | os.PathLike,
    neutral_inputs: Sequence[str | os.PathLike] = (),
    split: str = "paper",
    n_test_neutral: int = 160,
    n_test_pose: int = 160,
    seed: int = 0,
    runner: FeatureRunner | None = None,
    progress: bool = True,
    test_subjects: str | None = None,
) -> BuildResult:
    """Build the dataset in ``out`` (layout in the module docstring) from manifest CSVs.

    inputs / neutral_inputs : manifests; every row of a neutral input is a neutral mesh (see
    :mod:`bodydata.dataset.pairing` for the other ways a row is marked neutral).
    template : template name (``anny``, ``anny-lite``) or folder; every mesh must have its connectivity.
    split : ``"paper"`` (random test pairs) or ``"subject"`` (disjoint identities); see :mod:`bodydata.dataset.split`.
    test_subjects : with ``"subject"``, a regular expression naming the test identities (their whole key); the test
        counts are then not used.
    runner : computes missing features (:data:`FeatureRunner`; default: in this process).
    Raises ``BodydataError`` when no pair is left or the split is impossible (``failures.csv`` is still written).
    """
    import bodydata.features.scaling  # noqa: F401  (fail before the long part if it is unavailable)
    from bodydata.templates.template import load_template

    t0 = time.perf_counter()
    out = Path(out)
    records, failures = read_inputs(inputs, neutral_inputs)
    pairing = pair_meshes(records)
    # An impossible split (too few pairs for the test counts, a test-subject pattern that matches nothing) is
    # reported before anything is written: an existing dataset in ``out`` stays usable.
    make_split(split, [m.id for m in pairing.meshes], pairing.roles, pairing.identities, n_test_neutral, n_test_pose,
               seed, test_subjects)
    out.mkdir(parents=True, exist_ok=True)
    # card.json is written last: while it is absent the folder is an incomplete build (the Dataset refuses it).
    (out / FILES["card_json"]).unlink(missing_ok=True)
    tpl = load_template(template)
    options = extractor_options()
    digest = template_digest(tpl, options)
    cache_dir = out / "cache" / f"features-{digest[:16]}"

    shas, items, failed = _hash_inputs(pairing, progress)
    # A folder is passed to workers by absolute path (they may run elsewhere); names stay names.
    spec = str(Path(template).resolve()) if Path(template).is_dir() else str(template)
    fopts = feature_options(spec, digest, options)
    summary, failed_sha = run_features(items, cache_dir, fopts, runner, progress)
    failed.update({mid: failed_sha[sha] for mid, sha in shas.items() if sha in failed_sha})
    pairing = drop_failed(pairing, failed)
    failures = failures + pairing.failures
    atomic_write_text(out / FILES["failures"], _csv_text(FAILURE_COLUMNS, [
        [fl.id, fl.source, fl.subject, fl.path, fl.stage, fl.reason] for fl in failures]))
    if not len(pairing):
        raise BodydataError(f"{out}: no pairs left ({len(failures)} input rows failed; see {out / FILES['failures']})")

    ids = [m.id for m in pairing.meshes]
    splits = make_split(split, ids, pairing.roles, pairing.identities, n_test_neutral, n_test_pose, seed, test_subjects)
    nidx = np.asarray(pairing.neutral_index, dtype=np.int64)
    train = splits == "train"
    fit_rows = train.copy()
    fit_rows[nidx[train]] = True  # f_s of a train pair is seen in training too
    stats = assemble_arrays(out, cache_dir, [shas[i] for i in ids], fit_rows, tpl.n_vertices,
                            progress=progress)
    _save_npy(out / FILES["neutral_index"], nidx)
    scaler_info = _save_scaling(out / FILES["scaling"], stats)
    atomic_write_text(out / FILES["pairs"], _csv_text(PAIR_COLUMNS, _pair_rows(pairing, splits, shas)))

    counts = _counts(pairing, splits)
    input_info = [{"path": str(Path(p).resolve()), "role": role, "sha256": sha256_file(p)}
                  for ps, role in ((inputs, "inputs"), (neutral_inputs, "neutral")) for p in ps]
    card = {
        "format": DATASET_FORMAT,
        "version": DATASET_VERSION,
        "name": out.name,
        "counts": counts,
        # a folder by absolute path: runs trained on this dataset find their template from any working folder
        "template": {"name": tpl.name, "spec": spec, "n_vertices": tpl.n_vertices, "n_faces": tpl.n_faces,
                     "n_parts": len(tpl.part_names), "digest": digest},
        "features": {"layout": list(_feature_layout()), "dtype": "float32", "extractor": options,
                     "coarse": "16 parts of the template", "cache": str(cache_dir.relative_to(out))},
        "scaling": {**scaler_info, "fitted_on_meshes": int(fit_rows.sum()), "fitted_on": "train split"},
        "split": {"method": split, "seed": seed, "n_test_neutral": n_test_neutral, "n_test_pose": n_test_pose,
                  "test_subjects": test_subjects},
        "several_neutrals": pairing.several_neutrals,
        "failures": {"total": len(failures), "by_stage": dict(Counter(fl.stage for fl in failures))},
        "inputs": input_info,
        "versions": _versions(),
    }
    card["files"] = {k: _file_info(out / FILES[k]) for k in ("f", "g", "neutral_index", "scaling", "pairs", "failures")}
    atomic_write_text(out / FILES["card_json"], json.dumps(card, indent=1, sort_keys=False) + "\n")
    atomic_write_text(out / FILES["card_md"], _card_md({**card, "_root": str(out.resolve())}))
    sizes = {k: v["bytes"] for k, v in card["files"].items()}
    sizes["cache"] = _dir_bytes(out / "cache")
    return BuildResult(out, len(pairing), counts, failures, summary, time.perf_counter() - t0, sizes)


def _feature_layout() -> tuple[str, ...]:
    from bodydata.features.acap import FEATURE_LAYOUT

    return FEATURE_LAYOUT


def _save_scaling(path: Path, stats: dict[str, np.ndarray]) -> dict[str, Any]:
    """Fit the scaling from the train min/max and save it; returns the card's summary of it."""
    from bodydata.dataset.scaling_io import fit_scaling, save_scaling

    scaling = fit_scaling(stats)
    save_scaling(path, scaling)
    return scaling.summary()
