"""Timings of bodydata mesh I/O and mesh operations on a body-sized mesh, with trimesh as the in-process baseline.

Usage: python benchmarks/bench_mesh_io.py [--level 5] [--repeat 5] [--extra-faces 43000]
Prints the median wall time of each operation in milliseconds and, where trimesh does the same
job, the ratio bodydata / trimesh (below 1 = bodydata faster). One row reads a binary PLY as MeshLab
writes a raw scan: per-face texture coordinates (a float list), colour and quality next to the corners.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

from bodydata.mesh import (
    cotangent_laplacian,
    edges,
    is_vertex_manifold,
    one_ring,
    read_mesh,
    vertex_areas,
    vertex_normals,
    write_mesh,
)


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def write_meshlab_ply(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Binary PLY with MeshLab's extra per-face properties: 6 texture coordinates, RGB and a float quality."""
    head = ["ply", "format binary_little_endian 1.0", f"element vertex {len(vertices)}", "property float x",
            "property float y", "property float z", f"element face {len(faces)}",
            "property list uchar int vertex_indices", "property list uchar float texcoord", "property uchar red",
            "property uchar green", "property uchar blue", "property float quality", "end_header"]
    rows = np.zeros(len(faces), dtype=[("n", "u1"), ("idx", "<i4", (3,)), ("nt", "u1"), ("uv", "<f4", (6,)),
                                       ("rgb", "u1", (3,)), ("q", "<f4")])
    rows["n"], rows["idx"], rows["nt"] = 3, faces, 6
    rows["uv"] = np.random.default_rng(0).random((len(faces), 6))
    path.write_bytes(("\n".join(head) + "\n").encode() + vertices.astype("<f4").tobytes() + rows.tobytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--level", type=int, default=5, help="icosphere subdivision level (5: 10,242 vertices)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--extra-faces", type=int, default=43_000, help="faces of the MeshLab-style PLY (default 43,000)")
    args = ap.parse_args()
    s = trimesh.creation.icosphere(subdivisions=args.level)
    v, f = np.asarray(s.vertices, dtype=np.float64), np.asarray(s.faces, dtype=np.int64)
    n = len(v)
    print(f"mesh: {n} vertices, {len(f)} faces; median of {args.repeat} runs")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, binary in (("m.ply", True), ("a.ply", False), ("m.obj", True), ("m.off", True)):
            p = Path(tmp) / name
            w = median_ms(lambda: write_mesh(p, v, f, binary=binary), args.repeat)
            r = median_ms(lambda: read_mesh(p), args.repeat)
            base = median_ms(lambda: trimesh.load(p, process=False), args.repeat)
            kind = "binary" if binary and name.endswith(".ply") else "ascii"
            rows.append((f"write {name} ({kind})", w, None))
            rows.append((f"read  {name} ({kind})", r, r / base))
        level = 1 + int(np.ceil(np.log(args.extra_faces / 20) / np.log(4)))  # an icosphere has 20 * 4**level faces
        big = trimesh.creation.icosphere(subdivisions=max(args.level, level))
        p = Path(tmp) / "meshlab.ply"
        write_meshlab_ply(p, np.asarray(big.vertices), np.asarray(big.faces)[: args.extra_faces])
        r = median_ms(lambda: read_mesh(p), args.repeat)
        base = median_ms(lambda: trimesh.load(p, process=False), args.repeat)
        rows.append((f"read  meshlab.ply ({args.extra_faces} faces, extra)", r, r / base))
    rows.append(("edges", median_ms(lambda: edges(f), args.repeat), None))
    rows.append(("one_ring", median_ms(lambda: one_ring(f, n), args.repeat), None))
    rows.append(("is_vertex_manifold", median_ms(lambda: is_vertex_manifold(f, n), args.repeat), None))
    rows.append(("cotangent_laplacian", median_ms(lambda: cotangent_laplacian(v, f), args.repeat), None))
    vn = median_ms(lambda: vertex_normals(v, f), args.repeat)
    # trimesh caches normals per object, so the baseline builds a fresh Trimesh each run.
    vn_base = median_ms(lambda: trimesh.Trimesh(v, f, process=False).vertex_normals, args.repeat)
    rows.append(("vertex_normals", vn, vn / vn_base))
    rows.append(("vertex_areas", median_ms(lambda: vertex_areas(v, f), args.repeat), None))
    for name, ms, ratio in rows:
        extra = "" if ratio is None else f"   x{ratio:.2f} vs trimesh"
        print(f"{name:44s} {ms:9.2f} ms{extra}")


if __name__ == "__main__":
    main()
