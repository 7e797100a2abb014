"""Pipeline stage ``convert``: every mesh of the source manifests -> the template's connectivity, one item per mesh.

Input: ``sources.csv`` manifests (``sources-scan`` steps named by ``sources``, explicit ``manifest`` paths, or the
previous step), or a source adapter run over ``root`` (what ``bodydata convert`` uses). Each row is one
:func:`bodydata.registration.convert.convert_one` call on a worker; the
:class:`~bodydata.registration.register.Registrar` (template, prior, prefactored solve) is built once per worker
process and reused for every mesh it converts.

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
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator, Mapping, Sequence

from bodydata.errors import BodydataError
from bodydata.pipeline.stage import Item, ItemContext, Stage, StageContext, StageError
from bodydata.pipeline.stage_scan import SOURCES_CSV

__all__ = ["make_stage", "registrar_builds", "template_topology", "CONVERSION_CSV", "SUMMARY_JSON", "MESHES_DIR",
           "PRIOR_DIR"]

CONVERSION_CSV = "conversion.csv"
SUMMARY_JSON = "convert.json"
MESHES_DIR = "meshes"
ALIGNED_DIR = "aligned"
TORSO_PARTS = ("chest", "abdomen", "hips")
PRIOR_DIR = "prior"
WORST_PNG = "worst.png"
METRICS = ("n_landmarks", "landmark_error_mm", "p2m_mean_mm", "p2m_p95_mm", "m2p_mean_mm", "m2p_p95_mm", "scale",
           "iterations")
_ANNY_NAMES = ("anny", "anny-lite")

# Per worker process: the template, the prior and its prefactored solve are the expensive part, built once.
_REGISTRARS: dict[str, Any] = {}
_VTS: dict[str, Any] = {}
_BUILDS = 0


class ConversionError(BodydataError):
    """One mesh could not be converted (the registration failed or diverged); the message says why."""


def registrar_builds() -> int:
    """How many Registrars this process has built (each is then reused for every mesh with the same settings)."""
    return _BUILDS


def template_topology(tpl) -> str:
    """The manifest ``topology`` name of a template's connectivity (``anny_notoes``, ``scape_12500``, ...)."""
    meta = tpl.meta or {}
    if meta.get("anny_topology"):
        return f"anny_{meta['anny_topology']}"
    return str(meta.get("landmark_topology") or tpl.name)


def _config_fields() -> set[str]:
    from bodydata.registration.register import RegistrationConfig

    return {f.name for f in dataclasses.fields(RegistrationConfig)}


def _config(options: Mapping[str, Any]):
    """RegistrationConfig from the stage options (lists from YAML become the config's tuples)."""
    from bodydata.registration.register import RegistrationConfig

    extra = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(options.get("registration") or {}).items()}
    return RegistrationConfig(device=options.get("device"), hand_weight=float(options["hand_weight"]),
                              reverse_weight=float(options["reverse_weight"]), **extra)


def _registrar(template: str, prior: str, options: Mapping[str, Any]):
    global _BUILDS
    st = os.stat(prior)
    cfg = _config(options)
    # the prior's size and mtime: a prior rebuilt in place is not served from the cache
    key = json.dumps([template, os.path.abspath(prior), st.st_size, st.st_mtime_ns, dataclasses.asdict(cfg),
                      options.get("landmark_pairs")], default=str)
    if key not in _REGISTRARS:
        from bodydata.registration.prior import SparsePrior
        from bodydata.registration.register import Registrar
        from bodydata.templates.template import load_template

        tpl = load_template(template)
        if options.get("landmark_pairs"):
            tpl.landmarks.update(_pairs(options)[0])
        _REGISTRARS[key] = Registrar(tpl, SparsePrior.load(prior, n_vertices=tpl.n_vertices), cfg)
        _BUILDS += 1
    return _REGISTRARS[key]


def _pairs(options: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """(template, source) landmarks of the ``landmark_pairs`` file, read once per process."""
    return _read_pairs(options["landmark_pairs"], options["pairs_topology"])


@functools.lru_cache(maxsize=8)
def _read_pairs(path: str, topology: str) -> tuple[dict[str, int], dict[str, int]]:
    from bodydata.templates.landmarks import load_landmark_pairs

    return load_landmark_pairs(path, topology)


def _vts_landmarks(registrations: str, root: str):
    key = json.dumps([registrations, root])
    if key not in _VTS:
        from bodydata.registration.correspondence import VtsLandmarks

        _VTS[key] = VtsLandmarks(registrations, root)
    return _VTS[key]


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

    records: list[dict[str, Any]] = []
    if o.get("source"):
        from bodydata.sources.base import get_adapter

        if not o.get("root"):
            raise StageError("convert: the 'source' option needs 'root' (the dataset folder)")
        try:
            rows = get_adapter(str(o["source"])).discover(Path(o["root"]))
        except BodydataError as exc:
            raise StageError(f"convert: {exc}") from None
        records = [r.as_record() for r in rows]
    if o.get("sources") or o.get("manifest") or not o.get("source"):
        from bodydata.manifest.source_rows import read_source_table as read_manifest

        for path in _manifest_paths(ctx, list(o.get("sources") or []), list(o.get("manifest") or [])):
            records += read_manifest(path).to_dict("records")
    out = []
    for rec in records:
        r = {c: "" if rec.get(c) is None or str(rec.get(c)) in ("<NA>", "nan") else str(rec.get(c)) for c in COLUMNS}
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
    ``<stage>/prior/`` from generated anny bodies (as ``bodydata prior build --anny-identities``)."""
    if o.get("prior"):
        p = Path(o["prior"])
        if not p.is_file():
            raise StageError(f"{p}: prior file does not exist (build one with 'bodydata prior build')")
        return p.resolve(), False
    from bodydata.templates.template import load_template

    tpl = load_template(o["template"])
    topo = (tpl.meta or {}).get("anny_topology")
    if not topo:
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
    _build_anny_prior(tpl, topo, settings, dst)
    return dst, True


def _build_anny_prior(tpl, topo: str, settings: Mapping[str, Any], dst: Path) -> None:
    import time

    from bodydata.features.acap import AcapExtractor
    from bodydata.fsutil import atomic_write_text
    from bodydata.registration.prior import build_prior
    from bodydata.generator.bodies import anny_bodies

    t0 = time.perf_counter()
    print(f"convert: building the {tpl.name} prior (K={settings['components']}, {settings['identities']} x "
          f"{settings['poses']} anny bodies) into {dst}", flush=True)
    train = anny_bodies(topo, settings["identities"], settings["poses"], seed=settings["seed"]).vertices[topo]
    f = AcapExtractor(tpl.vertices, tpl.faces)(train).f
    try:
        pr = build_prior(f, tpl.vertices, tpl.faces, tpl.part_labels, settings["components"], tpl.name,
                         settings["falloff"])
    except BodydataError as exc:
        raise StageError(f"convert: cannot build the prior ({exc}); lower prior_components or raise "
                         "prior_identities / prior_poses") from None
    pr.save(dst)
    atomic_write_text(dst.with_suffix(".json"), json.dumps(
        {"settings": dict(settings), "n_train": len(train), "path": str(dst),
         "seconds": round(time.perf_counter() - t0, 1)}, indent=2) + "\n")


def _items(ctx: StageContext, options: Mapping[str, Any]) -> Iterator[Item]:
    records = _source_records(ctx, options)
    if not records:
        return
    prior, _ = _resolve_prior(ctx, options)
    for r in records:
        inputs = ([r["path"]] + ([r["landmarks_path"]] if r["landmarks_path"] else []) + [str(prior)]
                  + ([options["landmark_pairs"]] if options.get("landmark_pairs") else []))
        # sha256 and the scan's counts are not parameters: the input file's bytes are hashed anyway
        params = {k: v for k, v in r.items() if k not in ("sha256", "n_vertices", "n_faces")}
        yield Item(key=r["id"], inputs=tuple(inputs), params={"row": params, "prior": str(prior)})


# ---------------------------------------------------------------------------------------------------------------
# One mesh (worker)


def _process(item: Item, ctx: ItemContext) -> dict[str, Any]:
    import numpy as np

    from bodydata.fsutil import sha256_file
    from bodydata.mesh import read_mesh, write_mesh
    from bodydata.registration.convert import _safe_id, convert_one, source_landmarks
    from bodydata.sources.base import TOPOLOGY_VERTICES

    o = ctx.options
    rec = dict(item.params["row"])
    path = rec["path"]
    if rec.get("status") == "failed":
        raise ConversionError(f"{path}: not converted: the source scan marked it failed "
                              f"({rec.get('error') or 'no reason given'})")
    reg = _registrar(o["template"], item.params["prior"], o)
    mesh = read_mesh(path, expected_vertices=TOPOLOGY_VERTICES.get(rec.get("topology", "")))
    row_obj = SimpleNamespace(**rec)
    if o.get("vts_landmarks"):
        lm = _vts_landmarks(o["vts_landmarks"], o.get("vts_root") or str(Path(path).parent.parent))(
            row_obj, mesh.vertices)
    else:
        lm = source_landmarks(row_obj, len(mesh.vertices))
    if o.get("landmark_pairs"):
        from bodydata.templates.landmarks import add_pair_landmarks

        lm = add_pair_landmarks(lm, len(mesh.vertices), _pairs(o)[1], o["pairs_topology"])
    units = rec.get("units") or "m"
    try:
        res_row, res = convert_one(reg, rec["id"], mesh.vertices, mesh.faces, lm, None, path, units)
    except (ValueError, RuntimeError, ArithmeticError, IndexError, np.linalg.LinAlgError) as exc:
        # a numerical breakdown on this mesh is deterministic: recorded, not retried
        raise ConversionError(f"{path}: registration broke down ({type(exc).__name__}: {exc})") from None
    if res_row.status != "ok":
        detail = ", ".join(f"{k} {getattr(res_row, k):.1f}" for k in ("landmark_error_mm", "p2m_mean_mm")
                           if np.isfinite(getattr(res_row, k)))
        raise ConversionError(f"{path}: {res_row.reason}" + (f" ({detail})" if detail else ""))
    rel = f"{MESHES_DIR}/{_safe_id(rec['id'])}.ply"
    with ctx.output(rel) as tmp:
        write_mesh(tmp, res.vertices, reg.template.faces)
    # Downstream stages need every body in one frame (ACAP features see the global rotation). s p is the
    # mesh with the fitted similarity undone, but p keeps a few degrees of the similarity's gauge, so the
    # frame is fixed by the torso instead: a rigid fit of its chest/abdomen/hips onto the template's.
    from bodydata.mesh.alignment import align

    tpl = reg.template
    torso = np.isin(np.asarray(tpl.part_labels), [list(tpl.part_names).index(n) for n in TORSO_PARTS])
    body = res.scale * res.template_frame
    rel_aligned = f"{ALIGNED_DIR}/{_safe_id(rec['id'])}.ply"
    with ctx.output(rel_aligned) as tmp:
        write_mesh(tmp, align(body[torso], tpl.vertices[torso]).apply(body), tpl.faces)
    columns: dict[str, Any] = {
        "id": rec["id"], "source": rec.get("source", ""), "kind": rec.get("kind", ""),
        "subject": rec.get("subject", ""), "pose": rec.get("pose", ""),
        "topology": template_topology(reg.template), "source_topology": rec.get("topology", ""),
        "units": units, "up_axis": rec.get("up_axis", ""),
        "source_path": path, "input_sha256": sha256_file(path),
        "out_path": str(ctx.path(rel).resolve()), "out_sha256": sha256_file(ctx.path(rel)),
        "aligned_path": str(ctx.path(rel_aligned).resolve()),
        "aligned_sha256": sha256_file(ctx.path(rel_aligned)), "aligned_up_axis": reg.template.up_axis if reg.template.up_axis[0] in "+-" else "+" + reg.template.up_axis,
        "n_vertices": int(reg.template.n_vertices), "n_faces": int(reg.template.n_faces),
    }
    for k in METRICS:
        columns[k] = getattr(res_row, k)
    columns["register_seconds"] = round(float(res_row.seconds), 3)
    columns["prior"] = item.params["prior"]
    return columns


# ---------------------------------------------------------------------------------------------------------------
# After the items (driver): conversion.csv, sources.csv, worst.png, convert.json


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _finish(ctx: StageContext, rows: list, options: Mapping[str, Any]) -> None:
    import numpy as np

    from bodydata.fsutil import atomic_write_text
    from bodydata.registration.convert import ConvertRow, _write_results
    from bodydata.manifest.source_rows import COLUMNS, ManifestRow
    from bodydata.manifest.source_rows import write_source_rows as write_manifest

    out = Path(ctx.out_dir)
    source_of = {r["id"]: r for r in _source_records(ctx, options)}
    conv: list[ConvertRow] = []
    manifest_rows: list[dict[str, Any]] = []
    for row in rows:
        src = source_of.get(row.item, {})
        c = row.columns
        if row.status == "done":
            conv.append(ConvertRow(
                id=row.item, source_path=str(c.get("source_path", "")), out_path=str(c.get("out_path", "")),
                units=str(c.get("units", "m")), status="ok", n_landmarks=int(_float(c.get("n_landmarks", 0)) or 0),
                iterations=int(_float(c.get("iterations", 0)) or 0), seconds=_float(c.get("register_seconds")),
                **{k: _float(c.get(k)) for k in ("landmark_error_mm", "p2m_mean_mm", "p2m_p95_mm", "m2p_mean_mm",
                                                  "m2p_p95_mm", "scale")}))
            # downstream reads the aligned copy (template axes), so all bodies share one frame
            manifest_rows.append({**src, "path": c.get("aligned_path", ""), "topology": c.get("topology", ""),
                                  "n_vertices": c.get("n_vertices", ""), "n_faces": c.get("n_faces", ""),
                                  "sha256": c.get("aligned_sha256", ""), "landmarks_path": "", "status": "ok",
                                  "up_axis": c.get("aligned_up_axis", ""), "error": ""})
        else:
            conv.append(ConvertRow(id=row.item, source_path=src.get("path", ""), units=src.get("units") or "m",
                                   reason=row.reason))
            manifest_rows.append({**src, "id": row.item, "path": "", "landmarks_path": "", "n_vertices": "",
                                  "n_faces": "", "sha256": "", "status": "failed", "error": row.reason})
    _write_results(out / CONVERSION_CSV, conv)
    def manifest_row(r: dict[str, Any]) -> ManifestRow:
        rec = {c: str(r.get(c, "") or "") for c in COLUMNS}
        for c in ("n_vertices", "n_faces"):
            rec[c] = int(_float(rec[c])) if rec[c] else None
        return ManifestRow(**rec)

    write_manifest(out / SOURCES_CSV, [manifest_row(r) for r in manifest_rows])

    ok = [r for r in conv if r.status == "ok"]
    digest = hashlib.sha256(json.dumps(sorted((r.item, r.input_hash) for r in rows if r.status == "done"))
                            .encode()).hexdigest()
    summary_path = out / SUMMARY_JSON
    try:
        old = json.loads(summary_path.read_text()).get("done_digest")
    except (OSError, ValueError, AttributeError):
        old = None
    png = out / WORST_PNG
    if options.get("png", True) and ok and (old != digest or not png.is_file()):
        from bodydata.registration.convert import worst_png

        try:
            from bodydata.templates.template import load_template

            tpl = load_template(options["template"])
            worst_png(ok, tpl.faces, png, template=tpl)
        except (BodydataError, OSError, ValueError) as exc:  # a picture never fails the stage
            print(f"warning: {png} not written: {exc}", flush=True)
    priors = sorted({str(r.columns.get("prior", "")) for r in rows if r.status == "done"} - {""})
    summary = {
        "template": options["template"], "prior": priors[0] if len(priors) == 1 else priors,
        "prior_built_here": bool(priors) and all(Path(p).parent == (out / PRIOR_DIR).resolve() for p in priors),
        "rows": len(rows), "done": len(ok), "failed": len(rows) - len(ok), "done_digest": digest,
        "mean": {k: round(float(np.mean([getattr(r, k) for r in ok])), 4) for k in
                 ("landmark_error_mm", "p2m_mean_mm", "p2m_p95_mm", "m2p_mean_mm", "m2p_p95_mm", "seconds")} if ok
        else {},
    }
    atomic_write_text(summary_path, json.dumps(summary, indent=2) + "\n")


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
               landmark_pairs: str | None = None, pairs_topology: str = "smpl_6890") -> Stage:
    """``convert``: each source mesh registered onto ``template`` (``bodydata convert``; paper Eq. 14).

    template : template folder or built-in name. prior : prior ``.npz``; when absent and the template is an anny
        one, a prior of ``prior_components`` components is built once from ``prior_identities x prior_poses``
        generated anny bodies into ``<stage>/prior/``.
    sources : earlier ``sources-scan`` step name(s); manifest : ``sources.csv``-style path(s); source + root : a
        source adapter run over a folder (no scan step). Default: the previous step's ``sources.csv``.
    kind / match / limit : only rows of this kind / whose id matches the regex / the first ``limit`` rows.
    vts_landmarks (+ vts_root) : remeshed sources: landmarks through .vts maps from this FAUST registrations folder.
    landmark_pairs : a file of ``template_vertex source_vertex`` lines (the paper's 79 SCAPE <-> SMPL pairs):
        extra landmarks ``pair_<k>`` on the template and on every source mesh of ``pairs_topology``'s vertex count.
    hand_weight, reverse_weight, device : as ``bodydata convert``; registration : other
        :class:`~bodydata.registration.register.RegistrationConfig` fields (schedule, weights).
    """
    registration = dict(registration or {})
    unknown = set(registration) - _config_fields()
    if unknown:
        raise StageError(f"convert: unknown registration option(s) {', '.join(sorted(unknown))} "
                         f"(RegistrationConfig fields: {', '.join(sorted(_config_fields()))})")
    if limit is not None and int(limit) < 1:
        raise StageError("convert: limit must be >= 1")
    if landmark_pairs:
        from bodydata.templates.landmarks import load_landmark_pairs

        landmark_pairs = str(Path(landmark_pairs).resolve())
        load_landmark_pairs(landmark_pairs, pairs_topology)  # a bad file or topology fails here, once
    # What a mesh's result depends on (these enter every item's input hash); how the items are chosen does not:
    # a different limit, match or source list must not redo rows already converted.
    options = {
        "template": str(template), "hand_weight": float(hand_weight), "reverse_weight": float(reverse_weight),
        "device": device, "registration": registration, "vts_landmarks": vts_landmarks, "vts_root": vts_root,
    }
    if landmark_pairs:  # only when used: the item hashes of earlier runs without pairs stay valid
        options.update(landmark_pairs=landmark_pairs, pairs_topology=pairs_topology)
    listing = {
        **options, "prior": None if prior is None else str(prior), "sources": _as_list(sources),
        "manifest": _as_list(manifest), "source": source, "root": None if root is None else str(root),
        "kind": kind, "match": match, "limit": limit, "prior_components": int(prior_components),
        "prior_identities": int(prior_identities), "prior_poses": int(prior_poses),
        "prior_falloff": float(prior_falloff), "prior_seed": int(prior_seed), "png": bool(png),
    }
    return Stage(
        name="convert", process=_process, items=functools.partial(_items, options=listing), options=options,
        description=f"meshes converted to the {template} connectivity",
        finish=functools.partial(_finish, options=listing),
    )
