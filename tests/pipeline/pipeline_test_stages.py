"""Small real stages for the pipeline tests (imported by test modules, by dask workers and by `bodydata run` subprocesses).

Factories are module-level so the YAML runner can name them as ``pipeline_test_stages:make_...``; the tests put this
folder on PYTHONPATH for worker processes.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from bodydata.errors import BodydataError
from bodydata.mesh import read_mesh
from bodydata.pipeline.stage import Item, ItemContext, Stage, StageContext

MESH_SUFFIXES = (".ply", ".obj", ".off")


# -- area: read a mesh, write its per-face areas (.npy), return the total --------------------------------------------
def _area_items(ctx: StageContext, folder: str | None = None):
    root = Path(folder) if folder else Path(ctx.input_dir)
    for p in sorted(root.iterdir()):
        if p.suffix in MESH_SUFFIXES:
            yield Item(key=p.stem, inputs=(str(p),))


def _area_process(item: Item, ctx: ItemContext):
    mesh = read_mesh(item.inputs[0])
    v, f = mesh.vertices, mesh.faces
    areas = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    with ctx.output(f"{item.key}.npy") as tmp:
        np.save(tmp, areas)
    return {"area": float(areas.sum()), "n_vertices": int(len(v))}


def make_area_stage(folder: str | None = None, **options) -> Stage:
    import functools

    return Stage(
        name="area",
        process=_area_process,
        items=functools.partial(_area_items, folder=folder),
        options={"folder": folder, **options},
    )


# -- numbers: deterministic per-item arrays, optional sleep, optional one-time crash/flaky behaviour --------------
def _number_items(ctx: StageContext, count: int = 10):
    for i in range(count):
        yield Item(key=f"n{i:03d}", params={"i": i})


def _number_process(item: Item, ctx: ItemContext):
    opts = ctx.options
    i = int(item.params["i"])
    marker_dir = opts.get("marker_dir")
    if marker_dir and i in opts.get("crash_items", ()):
        marker = Path(marker_dir) / f"crashed-{item.key}"
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(17)  # the worker process dies mid-task, once
    if i in opts.get("poison_items", ()):
        os._exit(19)  # kills every worker that tries it
    if marker_dir and i in opts.get("flaky_items", ()):
        marker = Path(marker_dir) / f"flaked-{item.key}"
        if not marker.exists():
            marker.write_text("1")
            raise OSError("transient failure (first attempt)")
    if i in opts.get("bad_items", ()):
        raise BodydataError(f"item {item.key}: refused on purpose")
    time.sleep(float(opts.get("sleep", 0.0)))
    rng = np.random.default_rng(1000 + i)
    arr = rng.standard_normal((64, 3))
    with ctx.output(f"{item.key}.npy") as tmp:
        np.save(tmp, arr)
    return {"mean": float(arr.mean()), "i": i, "pid": os.getpid() if opts.get("report_pid") else None}


def make_number_stage(count: int = 10, **options) -> Stage:
    import functools

    return Stage(
        name="numbers",
        process=_number_process,
        items=functools.partial(_number_items, count=count),
        options={"count": count, **options},
    )


# -- env: report the thread settings a worker task sees -----------------------------------------------------------
def _env_items(ctx: StageContext, count: int = 4):
    for i in range(count):
        yield Item(key=f"e{i}", params={"i": i})


def _env_process(item: Item, ctx: ItemContext):
    import torch
    from threadpoolctl import threadpool_info

    blas = [p["num_threads"] for p in threadpool_info()]
    return {
        "omp": os.environ.get("OMP_NUM_THREADS", ""),
        "torch_threads": torch.get_num_threads(),
        "blas_max": max(blas) if blas else 1,
        "pid": os.getpid(),
    }


def make_env_stage(count: int = 4) -> Stage:
    import functools

    return Stage(name="env", process=_env_process, items=functools.partial(_env_items, count=count),
                 options={"count": count})


# -- test data -------------------------------------------------------------------------------------------------------
def write_noisy_spheres(folder: Path, count: int, subdivisions: int = 2, seed: int = 0) -> list[Path]:
    """``count`` icospheres (radius 1, vertices jittered by ~1%) as binary PLY files ``sphere_000.ply``..."""
    import trimesh

    from bodydata.mesh import write_mesh

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = trimesh.creation.icosphere(subdivisions=subdivisions)
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(count):
        v = np.asarray(base.vertices, dtype=np.float64) * (1.0 + 0.01 * rng.standard_normal((len(base.vertices), 1)))
        p = folder / f"sphere_{k:03d}.ply"
        write_mesh(p, v, np.asarray(base.faces, dtype=np.int64))
        paths.append(p)
    return paths


def loop_area(path: Path) -> float:
    """Reference surface area: Heron's formula, one triangle at a time."""
    mesh = read_mesh(path)
    total = 0.0
    for a, b, c in mesh.faces:
        pa, pb, pc = mesh.vertices[a], mesh.vertices[b], mesh.vertices[c]
        la, lb, lc = np.linalg.norm(pb - pc), np.linalg.norm(pa - pc), np.linalg.norm(pa - pb)
        s = 0.5 * (la + lb + lc)
        total += float(np.sqrt(max(s * (s - la) * (s - lb) * (s - lc), 0.0)))
    return total
