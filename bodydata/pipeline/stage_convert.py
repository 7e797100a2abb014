"""Pipeline stage ``convert``: every mesh of the source manifests -> the template's connectivity, one item per mesh.

Input: ``sources.csv`` manifests (``sources-scan`` steps named by ``sources``, explicit ``manifest`` paths, or the
previous step), or a source adapter run over ``root`` (what ``bodydata convert`` uses). Each row is one
:func:`bodydata.registration.convert.convert_meshes` conversion on a worker (with ``batch_size`` > 1 in one
process, several rows in one batch); the :class:`~bodydata.registration.register.Registrar` (template, prior,
prefactored solve) is built once per worker process and reused for every mesh it converts.

Stage folder::

    meshes/<id>.ply     converted mesh (template connectivity, the input's frame and units)
    aligned/<id>.ply    the same mesh moved rigidly so that its torso (chest, abdomen, hips) best fits the
                        template's: template axes, the input's scale and units; ``sources.csv`` points here,
                        so downstream bodies share a frame
    manifest.csv        the stage manifest: one row per input mesh, done/failed + reason, metrics
    conversion.csv      the same rows in the ``bodydata convert`` table format (``ConvertRow`` columns)
    sources.csv         the aligned meshes as a source manifest (input of ``neutralize`` and ``build-dataset``)
    worst.png           the worst conversions, coloured by distance to the input surface
    convert.json        template, prior used (and whether this stage built it), counts and mean metrics
    prior/              the anny prior built here when no ``prior`` is given (anny templates only)

The prior is a sparse ACAP prior ``.npz`` (:class:`~bodydata.registration.register.Registrar`) or a run folder of
``bodydata train``: then the learned embedding is the prior (:class:`~bodydata.evaluate.prior_registration.
ModelPriorRegistrar`, the paper's FAUST experiment), the template must be the run's, ``registration`` overrides are
:class:`~bodydata.evaluate.prior_registration.ModelPriorConfig` fields, and ``reverse_weight`` (the sparse coarse
stage's) is not used. Each row's ``prior`` column (stage manifest and ``conversion.csv``) names the prior used.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from bodydata.errors import BodydataError
from bodydata.manifest.status import STATUS_DONE, STATUS_FAILED
from bodydata.pipeline.stage import Item, ItemContext, Stage, StageContext, StageError
from bodydata.pipeline.stage_scan import SOURCES_CSV
from bodydata.registration.body_landmarks import LANDMARK_MODES
from bodydata.registration.convert import METRICS, TORSO_PARTS
from bodydata.worker_cache import WorkerCache, cache_key

if TYPE_CHECKING:
    from bodydata.pipeline.orchestrate import StageSummary
    from bodydata.registration.convert import Conversion, ConvertRow, ConvertTarget
    from bodydata.evaluate.prior_registration import ModelPriorConfig, ModelPriorRegistrar
    from bodydata.registration.register import Registrar, RegistrationConfig
    from bodydata.templates.template import Template

__all__ = ["make_stage", "registrar_builds", "template_topology", "ConvertOptions", "CONVERSION_CSV", "SUMMARY_JSON",
           "MESHES_DIR", "PRIOR_DIR", "TORSO_PARTS"]

CONVERSION_CSV = "conversion.csv"
SUMMARY_JSON = "convert.json"
MESHES_DIR = "meshes"
ALIGNED_DIR = "aligned"
PRIOR_DIR = "prior"
WORST_PNG = "worst.png"

# Per worker process: the template, the prior and its prefactored solve are the expensive part, built once.
_REGISTRARS: WorkerCache = WorkerCache("registrars")
_VTS: WorkerCache = WorkerCache("vts landmarks")
_FINDERS: WorkerCache = WorkerCache("body-model landmark finders")
# Driver process, by stage folder: the source rows listed for the items (read again by the finish step) and, for
# batched runs, the items in order (an item converts the next ones with it, :func:`_peers`).
_LISTED: dict[str, list[dict[str, str]]] = {}
_PLANNED: dict[str, list[Item]] = {}
# Conversions done ahead of their item's turn (batched runs), by :func:`_cache_key`.
_CONVERTED: dict[str, Conversion] = {}


class ConversionError(BodydataError):
    """One mesh could not be converted (the registration failed or diverged); the message says why."""


@dataclass(frozen=True)
class ConvertOptions:
    """What a mesh's conversion depends on (the stage's hashed options, :attr:`Stage.options`).

    template : template folder or built-in name; hand_weight, reverse_weight, device and registration (other
    :class:`~bodydata.registration.register.RegistrationConfig` fields) : the registration's settings;
    vts_landmarks (+ vts_root) : landmarks through .vts maps; landmark_pairs + pairs_topology : pair landmarks;
    landmarks : ``auto`` (a mesh's own, else from the body-model fit), ``model`` (always from the fit), ``none``
    (its own only) or a landmark CSV for every mesh (:data:`~bodydata.registration.body_landmarks.LANDMARK_MODES`)."""

    template: str
    hand_weight: float = 1.0
    reverse_weight: float = 0.0
    device: str | None = None
    registration: Mapping[str, Any] = field(default_factory=dict)
    vts_landmarks: str | None = None
    vts_root: str | None = None
    landmark_pairs: str | None = None
    pairs_topology: str = "smpl_6890"
    landmarks: str = "auto"

    def as_options(self) -> dict[str, Any]:
        """The JSON options (pair keys only when pairs are used: item hashes of runs without them stay valid)."""
        d = {"template": self.template, "hand_weight": self.hand_weight, "reverse_weight": self.reverse_weight,
             "device": self.device, "registration": dict(self.registration), "vts_landmarks": self.vts_landmarks,
             "vts_root": self.vts_root}
        if self.landmark_pairs:
            d.update(landmark_pairs=self.landmark_pairs, pairs_topology=self.pairs_topology)
        if self.landmarks != "auto":  # (the default adds no key: hashes of earlier runs stay valid)
            d.update(landmarks=self.landmarks)
        return d

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ConvertOptions:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names})

    def config(self) -> RegistrationConfig:
        """The RegistrationConfig (lists from YAML become the config's tuples)."""
        from bodydata.registration.register import RegistrationConfig

        extra = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(self.registration).items()}
        return RegistrationConfig(device=self.device, hand_weight=float(self.hand_weight),
                                  reverse_weight=float(self.reverse_weight), **extra)


def registrar_builds() -> int:
    """How many Registrars this process has built (each is then reused for every mesh with the same settings)."""
    return _REGISTRARS.builds


def template_topology(tpl: Template) -> str:
    """The manifest ``topology`` name of a template's connectivity (``anny_notoes``, ``scape_12500``, ...)."""
    meta = tpl.meta or {}
    if meta.get("anny_topology"):
        return f"anny_{meta['anny_topology']}"
    return str(meta.get("landmark_topology") or tpl.name)


def _config_fields() -> set[str]:
    from bodydata.registration.register import RegistrationConfig

    return {f.name for f in dataclasses.fields(RegistrationConfig)}


def _model_config_fields() -> set[str]:
    from bodydata.evaluate.prior_registration import ModelPriorConfig

    return {f.name for f in dataclasses.fields(ModelPriorConfig)}


def _folder_key(folder: str | os.PathLike) -> str:
    return str(Path(folder).resolve())


def _model_config(o: ConvertOptions) -> ModelPriorConfig:
    """The embedding prior's settings: the stage's hand weight, device and ``registration`` overrides."""
    from bodydata.evaluate.prior_registration import ModelPriorConfig

    extra = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(o.registration).items()}
    return ModelPriorConfig(device=o.device, hand_weight=float(o.hand_weight), **extra)


def _run_files(run: str | os.PathLike) -> list[str]:
    """The files of a run that its decoder depends on (its items' inputs: a retrained run redoes the rows)."""
    from bodydata.model.run_format import RUN_FILES, checkpoint_path

    return [str(Path(run) / RUN_FILES["config"]), str(Path(run) / RUN_FILES["context"]), str(checkpoint_path(run, "last"))]


def _model_registrar(o: ConvertOptions, run: str) -> ModelPriorRegistrar:
    cfg = _model_config(o)
    stamp = [(os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in _run_files(run)]

    def build() -> ModelPriorRegistrar:
        from bodydata.evaluate.prior_registration import ModelPriorRegistrar
        from bodydata.templates.template import load_template

        tpl = load_template(o.template)
        if o.landmark_pairs:
            tpl.landmarks.update(_read_pairs(o.landmark_pairs, o.pairs_topology)[0])
        return ModelPriorRegistrar.from_run(run, tpl, cfg)

    return _REGISTRARS.get(cache_key("model-prior", o.template, os.path.abspath(run), stamp, dataclasses.asdict(cfg),
                                     o.landmark_pairs), build)


def _registrar(o: ConvertOptions, prior: str) -> Registrar | ModelPriorRegistrar:
    if Path(prior).is_dir():  # a run folder: the learned embedding is the prior
        return _model_registrar(o, prior)
    st = os.stat(prior)
    cfg = o.config()

    def build() -> Registrar:
        from bodydata.registration.prior import SparsePrior
        from bodydata.registration.register import Registrar
        from bodydata.templates.template import load_template

        tpl = load_template(o.template)
        if o.landmark_pairs:
            tpl.landmarks.update(_read_pairs(o.landmark_pairs, o.pairs_topology)[0])
        return Registrar(tpl, SparsePrior.load(prior, n_vertices=tpl.n_vertices), cfg)

    # the prior's size and mtime: a prior rebuilt in place is not served from the cache
    return _REGISTRARS.get(cache_key(o.template, os.path.abspath(prior), st.st_size, st.st_mtime_ns,
                                     dataclasses.asdict(cfg), o.landmark_pairs), build)


@functools.lru_cache(maxsize=8)
def _read_pairs(path: str, topology: str) -> tuple[dict[str, int], dict[str, int]]:
    """(template, source) landmarks of a ``landmark_pairs`` file, read once per process."""
    from bodydata.templates.landmarks import load_landmark_pairs

    return load_landmark_pairs(path, topology)


def _finder(o: ConvertOptions, registrar: Registrar):
    """The body-model landmark finder of this process (anny built once), or None when ``landmarks`` is ``none`` or a
    file (a mesh without landmarks then fails)."""
    if o.landmarks not in ("auto", "model"):
        return None
    names = sorted(registrar.template.landmarks)
    topo = (registrar.template.meta or {}).get("anny_topology")

    def build():
        from bodydata.registration.body_landmarks import BodyLandmarks

        return BodyLandmarks(names, device=o.device, template_topology=topo)

    return _FINDERS.get(cache_key(names, o.device, topo), build)


def _vts_landmarks(registrations: str, root: str):
    def build():
        from bodydata.registration.correspondence import VtsLandmarks

        return VtsLandmarks(registrations, root)

    return _VTS.get(cache_key(registrations, root), build)


# ---------------------------------------------------------------------------------------------------------------
# Listing (driver)


def _manifest_paths(ctx: StageContext, sources: Sequence[str], manifest: Sequence[str]) -> list[Path]:
    from bodydata.pipeline.stage_scan import find_sources_csv

    paths = [Path(m) for m in manifest]
    for name in sources:
        if name not in ctx.upstream:
            raise StageError(f"convert: sources step {name!r} is not an earlier step of the pipeline")
        paths.append(find_sources_csv(ctx.upstream[name]))
    if not paths:
        if ctx.input_dir is None:
            raise StageError("convert: give 'sources' (sources-scan steps), 'manifest' (CSV paths) or 'source' + "
                             "'root', or put the step after a sources-scan step")
        paths.append(find_sources_csv(ctx.input_dir))
    for p in paths:
        if not p.is_file():
            raise StageError(f"{p}: manifest file does not exist")
    return paths


def _source_records(ctx: StageContext, o: Mapping[str, Any]) -> list[dict[str, str]]:
    """The source rows to convert (ManifestRow columns as strings, paths absolute), filtered, in input order."""
    from bodydata.manifest.source_rows import COLUMNS
    from bodydata.registration.source_manifest import read_source_records

    records: list[dict[str, str]] = []
    if o.get("source"):
        from bodydata.sources.base import get_adapter

        if not o.get("root"):
            raise StageError("convert: the 'source' option needs 'root' (the dataset folder)")
        try:
            rows = get_adapter(str(o["source"])).discover(Path(o["root"]))
        except BodydataError as exc:
            raise StageError(f"convert: {exc}") from None
        records = [{c: "" if v is None else str(v) for c, v in r.as_record().items() if c in COLUMNS} for r in rows]
    if o.get("sources") or o.get("manifest") or not o.get("source"):
        for path in _manifest_paths(ctx, list(o.get("sources") or []), list(o.get("manifest") or [])):
            records += read_source_records(path)
    out = []
    for r in records:
        if o.get("kind") and r["kind"] != o["kind"]:
            continue
        if o.get("match") and not re.search(str(o["match"]), r["id"]):
            continue
        out.append(r)
    if o.get("limit") is not None:
        out = out[: int(o["limit"])]
    return out


def _prior_settings(o: Mapping[str, Any], template_name: str) -> dict[str, Any]:
    return {"template": template_name, "identities": int(o["prior_identities"]), "poses": int(o["prior_poses"]),
            "components": int(o["prior_components"]), "falloff": float(o["prior_falloff"]),
            "seed": int(o["prior_seed"])}


def _resolve_prior(ctx: StageContext, o: Mapping[str, Any]) -> tuple[Path, bool]:
    """(prior path, built by this stage). Without a ``prior`` option an anny template gets one built once into
    ``<stage>/prior/`` from generated anny bodies (:func:`bodydata.registration.prior_build.build_priors`, as
    ``bodydata prior build --anny-identities``)."""
    if o.get("prior"):
        p = Path(o["prior"])
        if p.is_dir():  # a run folder of 'bodydata train' (checked by make_stage)
            return p.resolve(), False
        if not p.is_file():
            raise StageError(f"{p}: prior file does not exist (build one with 'bodydata prior build')")
        return p.resolve(), False
    from bodydata.registration.prior_build import anny_training, build_priors
    from bodydata.templates.template import load_template

    tpl = load_template(o["template"])
    if not (tpl.meta or {}).get("anny_topology"):
        raise StageError(f"convert: template {tpl.name!r} is not an anny template, so no prior is built for it: give "
                         "the 'prior' option (a .npz from 'bodydata prior build --manifest ...')")
    settings = _prior_settings(o, tpl.name)
    dst = (Path(ctx.out_dir) / PRIOR_DIR / f"{tpl.name}_K{settings['components']}.npz").resolve()
    report = dst.with_suffix(".json")
    if dst.is_file() and report.is_file():
        try:
            if json.loads(report.read_text())["settings"] == settings:
                return dst, True
        except (ValueError, KeyError, OSError):
            pass  # an unreadable report: build again
    print(f"convert: building the {tpl.name} prior (K={settings['components']}, {settings['identities']} x "
          f"{settings['poses']} anny bodies) into {dst}", flush=True)
    try:
        training = anny_training(tpl, settings["identities"], settings["poses"], seed=settings["seed"])
        build_priors(tpl, training, [settings["components"]], dst, settings["falloff"], measure=False,
                     settings=settings)
    except BodydataError as exc:
        raise StageError(f"convert: cannot build the prior ({exc}); lower prior_components or raise "
                         "prior_identities / prior_poses") from None
    return dst, True


def _items(ctx: StageContext, options: Mapping[str, Any]) -> Iterator[Item]:
    records = _source_records(ctx, options)
    _LISTED[_folder_key(ctx.out_dir)] = records  # the finish step reads them instead of listing the sources again
    if not records:
        return
    prior, _ = _resolve_prior(ctx, options)
    items = []
    for r in records:
        inputs = ([r["path"]] + ([r["landmarks_path"]] if r["landmarks_path"] else [])
                  + (_run_files(prior) if prior.is_dir() else [str(prior)])
                  + ([options["landmark_pairs"]] if options.get("landmark_pairs") else []))
        # sha256 and the scan's counts are not parameters: the input file's bytes are hashed anyway
        params = {k: v for k, v in r.items() if k not in ("sha256", "n_vertices", "n_faces")}
        items.append(Item(key=r["id"], inputs=tuple(inputs), params={"row": params, "prior": str(prior)}))
    if int(options.get("batch_size") or 1) > 1:
        _PLANNED[_folder_key(ctx.out_dir)] = items
    yield from items


# ---------------------------------------------------------------------------------------------------------------
# One mesh (worker)


def _target(rec: Mapping[str, str], o: ConvertOptions) -> ConvertTarget:
    """The mesh of a source row with its landmarks (the row's, through .vts maps, plus pair landmarks)."""
    from bodydata.mesh import read_mesh
    from bodydata.registration.convert import ConvertTarget, source_landmarks
    from bodydata.sources.base import TOPOLOGY_VERTICES

    path = rec["path"]
    if rec.get("status") == STATUS_FAILED:
        raise ConversionError(f"{path}: not converted: the source scan marked it failed "
                              f"({rec.get('error') or 'no reason given'})")
    mesh = read_mesh(path, expected_vertices=TOPOLOGY_VERTICES.get(rec.get("topology", "")), allow_point_cloud=True)
    row_obj = SimpleNamespace(**rec)
    if o.landmarks == "model":  # the body-model start alone, whatever the mesh came with
        return ConvertTarget(rec["id"], mesh.vertices, mesh.faces, None, path, rec.get("units") or "m")
    if o.landmarks not in LANDMARK_MODES:  # one landmark CSV for every mesh (they share a connectivity)
        from bodydata.templates.landmarks import read_landmarks_csv

        lm = read_landmarks_csv(o.landmarks, len(mesh.vertices))
    elif o.vts_landmarks:
        lm = _vts_landmarks(o.vts_landmarks, o.vts_root or str(Path(path).parent.parent))(row_obj, mesh.vertices)
    else:
        lm = source_landmarks(row_obj, len(mesh.vertices))
    if o.landmark_pairs:
        from bodydata.templates.landmarks import add_pair_landmarks

        lm = add_pair_landmarks(lm, len(mesh.vertices), _read_pairs(o.landmark_pairs, o.pairs_topology)[1],
                                o.pairs_topology)
    return ConvertTarget(rec["id"], mesh.vertices, mesh.faces, lm, path, rec.get("units") or "m")


def _cache_key(ctx: ItemContext, item: Item) -> str:
    return json.dumps([_folder_key(ctx.out_dir), item.key, item.params, dict(ctx.options)], sort_keys=True,
                      default=str)


def _peers(ctx: ItemContext, item: Item, o: ConvertOptions, n: int) -> list[tuple[str, ConvertTarget]]:
    """Up to ``n`` items listed after ``item`` in this process whose meshes are not converted yet, as (cache key,
    target): converted in one batch with it. Items that cannot be read or have no landmarks are left to their turn."""
    planned = _PLANNED.get(_folder_key(ctx.out_dir), [])
    keys = [it.key for it in planned]
    if n < 1 or item.key not in keys:
        return []
    from bodydata.registration.convert import converted_name

    out: list[tuple[str, ConvertTarget]] = []
    for peer in planned[keys.index(item.key) + 1:]:
        if len(out) >= n:
            break
        key = _cache_key(ctx, peer)
        if key in _CONVERTED or ctx.path(f"{MESHES_DIR}/{converted_name(peer.key)}").exists():
            continue  # converted already, or done in an earlier run (then not redone here)
        try:
            target = _target(peer.params["row"], o)
        except BodydataError:
            continue
        if target.landmarks:
            out.append((key, target))
    return out


def _convert(item: Item, ctx: ItemContext, o: ConvertOptions, batch_size: int) -> Conversion:
    """The conversion of ``item``: from this process's batch cache, else converted now with up to ``batch_size - 1``
    following items (whose results are kept for their turn)."""
    import numpy as np

    from bodydata.registration.convert import convert_meshes

    key = _cache_key(ctx, item)
    if key in _CONVERTED:
        return _CONVERTED.pop(key)
    target = _target(item.params["row"], o)
    peers = _peers(ctx, item, o, batch_size - 1) if target.landmarks else []
    registrar = _registrar(o, item.params["prior"])
    try:
        # anny is built only for a mesh that needs it (peers are batched only when they have landmarks)
        finder = _finder(o, registrar) if not target.landmarks else None
        convs = convert_meshes(registrar, [target] + [t for _, t in peers], finder)
    except (ValueError, RuntimeError, ArithmeticError, IndexError, np.linalg.LinAlgError) as exc:
        # a numerical breakdown on this mesh is deterministic: recorded, not retried
        raise ConversionError(f"{target.source_path}: registration broke down ({type(exc).__name__}: {exc})") from None
    for (peer_key, _), conv in zip(peers, convs[1:]):
        _CONVERTED[peer_key] = conv
    return convs[0]


def _process(item: Item, ctx: ItemContext, batch_size: int = 1) -> dict[str, Any]:
    import numpy as np

    from bodydata.fsutil import sha256_file
    from bodydata.mesh import write_mesh
    from bodydata.registration.convert import converted_name

    o = ConvertOptions.from_options(ctx.options)
    rec = item.params["row"]
    conv = _convert(item, ctx, o, batch_size)
    row = conv.row
    if not conv.done:
        detail = ", ".join(f"{k} {getattr(row, k):.1f}" for k in ("landmark_error_mm", "p2m_mean_mm")
                           if np.isfinite(getattr(row, k)))
        raise ConversionError(f"{row.source_path}: {row.reason}" + (f" ({detail})" if detail else ""))
    tpl = _registrar(o, item.params["prior"]).template
    rel, rel_aligned = f"{MESHES_DIR}/{converted_name(row.id)}", f"{ALIGNED_DIR}/{converted_name(row.id)}"
    with ctx.output(rel) as tmp:
        write_mesh(tmp, conv.vertices, tpl.faces)
    with ctx.output(rel_aligned) as tmp:
        write_mesh(tmp, conv.aligned, tpl.faces)
    path = rec["path"]
    columns: dict[str, Any] = {
        "id": rec["id"], "source": rec.get("source", ""), "kind": rec.get("kind", ""),
        "subject": rec.get("subject", ""), "pose": rec.get("pose", ""),
        "topology": template_topology(tpl), "source_topology": rec.get("topology", ""),
        "units": row.units, "up_axis": rec.get("up_axis", ""),
        "source_path": path, "input_sha256": sha256_file(path),
        "out_path": str(ctx.path(rel).resolve()), "out_sha256": sha256_file(ctx.path(rel)),
        "aligned_path": str(ctx.path(rel_aligned).resolve()),
        "aligned_sha256": sha256_file(ctx.path(rel_aligned)),
        "aligned_up_axis": tpl.up_axis if tpl.up_axis[0] in "+-" else "+" + tpl.up_axis,
        "n_vertices": int(tpl.n_vertices), "n_faces": int(tpl.n_faces),
    }
    for k in METRICS:
        columns[k] = getattr(row, k)
    columns["register_seconds"] = round(float(row.seconds), 3)
    columns["landmarks_from"] = row.landmarks_from
    columns["body_fit_mm"] = row.body_fit_mm
    columns["prior"] = item.params["prior"]
    return columns


# ---------------------------------------------------------------------------------------------------------------
# After the items (driver): conversion.csv, sources.csv, worst.png, convert.json


def _finish(ctx: StageContext, rows: list, options: Mapping[str, Any]) -> None:
    import numpy as np

    from bodydata.fsutil import atomic_write_text
    from bodydata.registration.convert import ConvertRow, write_results
    from bodydata.registration.source_manifest import write_source_records

    out = Path(ctx.out_dir)
    folder = _folder_key(out)
    _PLANNED.pop(folder, None)
    for key in [k for k in _CONVERTED if json.loads(k)[0] == folder]:
        del _CONVERTED[key]  # converted ahead for items that did not run (a stopped run): not kept
    listed = _LISTED.pop(folder, None)
    source_of = {r["id"]: r for r in (listed if listed is not None else _source_records(ctx, options))}
    conv: list[ConvertRow] = []
    manifest_rows: list[dict[str, Any]] = []
    for row in rows:
        src = source_of.get(row.item, {})
        c = row.columns
        if row.status == STATUS_DONE:
            conv.append(ConvertRow.from_record({**c, "id": row.item, "status": STATUS_DONE,
                                                "seconds": c.get("register_seconds", "")}))
            # downstream reads the aligned copy (template axes), so all bodies share one frame
            manifest_rows.append({**src, "path": c.get("aligned_path", ""), "topology": c.get("topology", ""),
                                  "n_vertices": c.get("n_vertices", ""), "n_faces": c.get("n_faces", ""),
                                  "sha256": c.get("aligned_sha256", ""), "landmarks_path": "", "status": STATUS_DONE,
                                  "up_axis": c.get("aligned_up_axis", ""), "error": ""})
        else:
            conv.append(ConvertRow(id=row.item, source_path=src.get("path", ""), units=src.get("units") or "m",
                                   reason=row.reason))
            manifest_rows.append({**src, "id": row.item, "path": "", "landmarks_path": "", "n_vertices": "",
                                  "n_faces": "", "sha256": "", "status": STATUS_FAILED, "error": row.reason})
    write_results(out / CONVERSION_CSV, conv)
    write_source_records(out / SOURCES_CSV, manifest_rows)

    done = [r for r in conv if r.status == STATUS_DONE]
    digest = hashlib.sha256(json.dumps(sorted((r.item, r.input_hash) for r in rows if r.status == STATUS_DONE))
                            .encode()).hexdigest()
    summary_path = out / SUMMARY_JSON
    try:
        old = json.loads(summary_path.read_text()).get("done_digest")
    except (OSError, ValueError, AttributeError):
        old = None
    png = out / WORST_PNG
    if options.get("png", True) and done and (old != digest or not png.is_file()):
        try:
            _worst_png(done, options["template"], png)
        except (BodydataError, OSError, ValueError) as exc:  # a picture never fails the stage
            print(f"warning: {png} not written: {exc}", flush=True)
    priors = sorted({str(r.columns.get("prior", "")) for r in rows if r.status == STATUS_DONE} - {""})
    summary = {
        "template": options["template"], "prior": priors[0] if len(priors) == 1 else priors,
        "prior_built_here": bool(priors) and all(Path(p).parent == (out / PRIOR_DIR).resolve() for p in priors),
        "rows": len(rows), "done": len(done), "failed": len(rows) - len(done), "done_digest": digest,
        "mean": {k: round(float(np.mean([getattr(r, k) for r in done])), 4) for k in
                 ("landmark_error_mm", "p2m_mean_mm", "p2m_p95_mm", "m2p_mean_mm", "m2p_p95_mm", "seconds")} if done
        else {},
    }
    atomic_write_text(summary_path, json.dumps(summary, indent=2) + "\n")


def _worst_png(rows: list[ConvertRow], template: str, path: Path) -> None:
    from bodydata.registration.convert import worst_panels
    from bodydata.templates.template import axis_vector, load_template
    from bodydata.viz.conversion_worst import draw_worst

    tpl = load_template(template)
    draw_worst(worst_panels(rows, tpl), tpl.faces, axis_vector(tpl.up_axis), axis_vector(tpl.front_axis), path)


# ---------------------------------------------------------------------------------------------------------------


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None or value == "":
        return []
    return [str(value)] if isinstance(value, (str, os.PathLike)) else [str(v) for v in value]


def make_stage(template: str = "anny", prior: str | None = None, sources: str | list[str] | None = None,
               manifest: str | list[str] | None = None, source: str | None = None, root: str | None = None,
               kind: str | None = None, match: str | None = None, limit: int | None = None,
               vts_landmarks: str | None = None, vts_root: str | None = None, hand_weight: float = 1.0,
               reverse_weight: float = 0.0, device: str | None = None, registration: dict | None = None,
               prior_components: int = 200, prior_identities: int = 16, prior_poses: int = 5,
               prior_falloff: float = 0.05, prior_seed: int = 0, png: bool = True,
               landmark_pairs: str | None = None, pairs_topology: str = "smpl_6890", batch_size: int = 1,
               landmarks: str = "auto") -> Stage:
    """``convert``: each source mesh registered onto ``template`` (``bodydata convert``; paper Eq. 14).

    template : template folder or built-in name. prior : prior ``.npz``, or a run folder of ``bodydata train``
        (the learned embedding as the prior; ``registration`` then takes ModelPriorConfig fields); when absent and
        the template is an anny one, a prior of ``prior_components`` components is built once from ``prior_identities x prior_poses``
        generated anny bodies into ``<stage>/prior/``.
    sources : earlier ``sources-scan`` step name(s); manifest : ``sources.csv``-style path(s); source + root : a
        source adapter run over a folder (no scan step). Default: the previous step's ``sources.csv``.
    kind / match / limit : only rows of this kind / whose id matches the regex / the first ``limit`` rows.
    vts_landmarks (+ vts_root) : remeshed sources: landmarks through .vts maps from this FAUST registrations folder.
    landmark_pairs : a file of ``template_vertex source_vertex`` lines (the paper's 79 SCAPE <-> SMPL pairs):
        extra landmarks ``pair_<k>`` on the template and on every source mesh of ``pairs_topology``'s vertex count.
    landmarks : ``auto`` (default: a mesh's own landmarks, else anny fitted to it gives them), ``model`` (always the
        fit's, for input with none at all), ``none`` (own only: a mesh without fails) or a landmark CSV shared by
        every mesh (same connectivity).
    hand_weight, reverse_weight, device : as ``bodydata convert``; registration : other
        :class:`~bodydata.registration.register.RegistrationConfig` fields (schedule, weights).
    batch_size : a speed setting (it writes the same files): in a process that lists and runs the items (an
        inline run), each item is registered in one batch with up to ``batch_size - 1`` of the items after it
        (:meth:`~bodydata.registration.register.Registrar.register_batch`, each result as if alone up to
        rounding), whose conversions wait in memory for their turn; on dask workers items are converted one by one.
    """
    registration = dict(registration or {})
    run_prior = prior is not None and Path(prior).is_dir()
    fields, config_name = ((_model_config_fields(), "ModelPriorConfig") if run_prior
                           else (_config_fields(), "RegistrationConfig"))
    unknown = set(registration) - fields
    if unknown:
        raise StageError(f"convert: unknown registration option(s) {', '.join(sorted(unknown))} "
                         f"({config_name} fields: {', '.join(sorted(fields))})")
    if run_prior:
        from bodydata.evaluate.prior_registration import check_run
        from bodydata.templates.template import load_template

        try:
            check_run(prior, load_template(template))
        except BodydataError as exc:
            raise StageError(f"convert: {exc}") from None
    if limit is not None and int(limit) < 1:
        raise StageError("convert: limit must be >= 1")
    if int(batch_size) < 1:
        raise StageError(f"convert: batch_size must be >= 1, got {batch_size}")
    if landmarks not in LANDMARK_MODES:
        from bodydata.templates.landmarks import read_landmarks_csv

        landmarks = str(Path(landmarks).resolve())
        read_landmarks_csv(landmarks)  # a missing or bad file fails here, once
    if landmark_pairs:
        from bodydata.templates.landmarks import load_landmark_pairs

        landmark_pairs = str(Path(landmark_pairs).resolve())
        load_landmark_pairs(landmark_pairs, pairs_topology)  # a bad file or topology fails here, once
    # What a mesh's result depends on (these enter every item's input hash); how the items are chosen does not:
    # a different limit, match or source list must not redo rows already converted, nor a different batch size.
    options = ConvertOptions(template=str(template), hand_weight=float(hand_weight),
                             reverse_weight=float(reverse_weight), device=device, registration=registration,
                             vts_landmarks=vts_landmarks, vts_root=vts_root, landmark_pairs=landmark_pairs or None,
                             pairs_topology=pairs_topology, landmarks=str(landmarks)).as_options()
    listing = {
        **options, "prior": None if prior is None else str(prior), "sources": _as_list(sources),
        "manifest": _as_list(manifest), "source": source, "root": None if root is None else str(root),
        "kind": kind, "match": match, "limit": limit, "prior_components": int(prior_components),
        "prior_identities": int(prior_identities), "prior_poses": int(prior_poses),
        "prior_falloff": float(prior_falloff), "prior_seed": int(prior_seed), "png": bool(png),
        "batch_size": int(batch_size),
    }
    return Stage(
        name="convert", process=functools.partial(_process, batch_size=int(batch_size)),
        items=functools.partial(_items, options=listing), options=options,
        description=f"meshes converted to the {template} connectivity",
        finish=functools.partial(_finish, options=listing),
    )


@dataclass
class ConvertRun:
    """What :func:`run_convert` did: the stage's counts line, the ``conversion.csv`` rows and the table's path."""

    summary: StageSummary
    results: list[ConvertRow]
    table: Path

    @property
    def exit_code(self) -> int:
        """0 when every selected mesh is converted, 1 when some failed."""
        from bodydata.manifest.status import is_done

        return 1 if self.summary.failed or not all(is_done(r.status) for r in self.results) else 0


def run_convert(out: str | os.PathLike, scheduler: str | None = None, workers: int | None = None,
                redo: bool = False, progress: bool = True, **stage_options: Any) -> ConvertRun:
    """``bodydata convert``: the convert stage (:func:`make_stage` with ``stage_options``) run with ``out`` as its
    folder, on the executor that ``scheduler`` / ``workers`` name (:func:`~bodydata.pipeline.orchestrate.
    open_executor`); a batch size above 1 runs in this process, where the items are batched. ``redo`` forgets the
    folder's stage manifest first. Raises BodydataError when the stage cannot start."""
    from bodydata.pipeline.manifest import JOURNAL_NAME, MANIFEST_NAME
    from bodydata.pipeline.orchestrate import open_executor, run_stage
    from bodydata.registration.convert import read_results

    folder = Path(out).resolve()
    stage = make_stage(**stage_options)
    if int(stage_options.get("batch_size") or 1) > 1:
        scheduler = "synchronous"
    if redo:
        for name in (MANIFEST_NAME, JOURNAL_NAME):
            (folder / name).unlink(missing_ok=True)
    with open_executor(scheduler, workers) as executor:
        summary = run_stage(stage, StageContext(out_dir=folder), executor, progress=progress)
    return ConvertRun(summary, read_results(folder / CONVERSION_CSV), folder / CONVERSION_CSV)
