"""Benchmark: ACAP features of one 12,272-vertex anny body (consistency included) on one core, peak memory,
and the consistency objective gap fast vs exact on real meshes (anny bodies; SCAPE 2,161 if ../shared is there).

    OMP_NUM_THREADS=1 python benchmarks/bench_acap.py [--repeat 5] [--no-gap] [--scape DIR]

Prints one line per figure. Goal: features <= 0.5 s per body on one core, posed or near-identity (a
reference body plus 0.5 mm noise, another phenotype at rest: tiny rotations with nearly arbitrary axes,
thousands of frustrated faces for the sign program).
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def anny_bodies(topology: str = "notoes") -> tuple[np.ndarray, np.ndarray]:
    """(B, n, 3) posed anny bodies (rest first; the far-apart poses the ACAP tests use) and faces."""
    import anny

    from bodydata.generator.poses import FAR_POSES, pose_axis_angles

    model = anny.Anny(topology=topology)
    return pose_axis_angles(model, FAR_POSES), np.asarray(model.faces, np.int64)


def time_features(verts: np.ndarray, faces: np.ndarray, repeat: int) -> None:
    import torch

    torch.set_num_threads(1)
    from bodydata.features.acap import AcapExtractor
    from bodydata.features.consistency import consistent_rotations
    from bodydata.features.polar import polar_decompose, rotation_log

    t0 = time.perf_counter()
    ext = AcapExtractor(verts[0], faces)
    print(f"template precompute ({len(verts[0])} vertices): {time.perf_counter() - t0:.3f} s")
    for b in range(1, len(verts)):
        ext(verts[b])  # warm up
    times = {"fit": [], "polar+log": [], "consistency": [], "total": []}
    for _ in range(repeat):
        for b in range(1, len(verts)):
            p = verts[b]
            t0 = time.perf_counter()
            t = ext.fit.gradients(p)
            t1 = time.perf_counter()
            rot, _ = polar_decompose(t)
            aa = rotation_log(rot)
            t2 = time.perf_counter()
            consistent_rotations(aa.axis, aa.theta, ext.edges, dual=ext.dual)
            t3 = time.perf_counter()
            ext(p)
            t4 = time.perf_counter()
            times["fit"].append(t1 - t0)
            times["polar+log"].append(t2 - t1)
            times["consistency"].append(t3 - t2)
            times["total"].append(t4 - t3)
    for k, v in times.items():
        print(f"features of one {len(verts[0])}-vertex body, {k}: median {np.median(v):.3f} s, max {np.max(v):.3f} s "
              f"({len(v)} runs, 1 thread)")
    tracemalloc.start()
    ext(verts[1])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak traced memory of one features call: {peak / 2**20:.1f} MiB")
    tracemalloc.start()
    ext(verts[1:])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak traced memory of a {len(verts) - 1}-body batch call: {peak / 2**20:.1f} MiB")


def gap_report(name: str, verts: np.ndarray, faces: np.ndarray, time_limit: float) -> None:
    """Fast vs exact: axis program (planar T-join, optimal) and turn program (HiGHS) on the same signs."""
    from bodydata.features.acap import AcapExtractor
    from bodydata.features.consistency import TWO_PI, axis_edge_signs, axis_objective, consistent_rotations, tjoin_signs, turn_objective
    from bodydata.features.consistency_exact import solve_turns
    from bodydata.features.polar import polar_decompose, rotation_log

    ext = AcapExtractor(verts[0], faces)
    rot, _ = polar_decompose(ext.fit.gradients(verts))
    aa = rotation_log(rot)
    fa, ea, ft, et, gaps = [], [], [], [], []
    tf = te_a = te_t = 0.0
    for b in range(1, len(verts)):
        t0 = time.perf_counter()
        fast = consistent_rotations(aa.axis[b], aa.theta[b], ext.edges, dual=ext.dual)
        tf += time.perf_counter() - t0
        sigma = axis_edge_signs(aa.axis[b], ext.edges)
        t0 = time.perf_counter()
        ex = tjoin_signs(sigma, ext.dual, 0, len(verts[0]), "exact")
        te_a += time.perf_counter() - t0
        fa.append(fast.axis_cost)
        ea.append(axis_objective(ex, sigma, ext.edges))
        phi = np.where(fast.signs > 0, aa.theta[b], TWO_PI - aa.theta[b])
        psi = phi + TWO_PI * fast.turns
        t0 = time.perf_counter()
        dk, gap, _, _ = solve_turns(psi, ext.edges, 0, time_limit)
        te_t += time.perf_counter() - t0
        ft.append(fast.turn_cost)
        et.append(turn_objective(psi + TWO_PI * dk, ext.edges))
        gaps.append(gap)
    fa, ea, ft, et = map(np.asarray, (fa, ea, ft, et))
    k = len(fa)
    print(f"{name}: {k} meshes. axis program (disagreeing edges): fast {fa.sum():.0f}, exact {ea.sum():.0f} "
          f"(+{100 * (fa.sum() - ea.sum()) / max(ea.sum(), 1):.1f} %; {int((fa > ea).sum())} meshes differ, max +{(fa - ea).max():.0f}); "
          f"turn program: fast {ft.sum():.4f}, exact {et.sum():.4f} (max rel gap {((ft - et) / np.maximum(et, 1e-12)).max():.1e}, "
          f"HiGHS proven gap max {max(gaps):.1e}); per mesh: fast {tf / k:.3f} s, exact axis {te_a / k:.3f} s, exact turns {te_t / k:.2f} s")


def near_identity_bodies(topology: str) -> tuple[np.ndarray, np.ndarray]:
    """(3, n, 3): anny's default body at rest (the reference), it plus 0.5 mm noise, another phenotype at rest."""
    import anny
    import torch

    model = anny.Anny(topology=topology)
    pheno = {"gender": 0.8, "age": 0.6, "muscle": 0.3, "weight": 0.7, "height": 0.4, "proportions": 0.6}
    with torch.no_grad():
        ref = model()["vertices"][0].double().numpy()
        other = model(phenotype_kwargs={k: torch.tensor([v]) for k, v in pheno.items()})["vertices"][0].double().numpy()
    noisy = ref + np.random.default_rng(0).normal(scale=5e-4, size=ref.shape)
    return np.stack([ref, noisy, other]), np.asarray(model.faces, np.int64)


def near_identity_report(name: str, verts: np.ndarray, faces: np.ndarray, repeat: int, exact: bool) -> None:
    """Consistency time and axis objective on near-identity bodies; the exact T-join optimum when ``exact``."""
    from bodydata.features.acap import AcapExtractor
    from bodydata.features.consistency import axis_edge_signs, axis_objective, consistent_rotations, tjoin_signs
    from bodydata.features.polar import polar_decompose, rotation_log

    ext = AcapExtractor(verts[0], faces)
    rot, _ = polar_decompose(ext.fit.gradients(verts))
    aa = rotation_log(rot)
    principal = AcapExtractor(verts[0], faces, consistency="none")(verts[1:]).f
    for b, kind in ((1, "reference + 0.5 mm noise"), (2, "other phenotype at rest")):
        ts = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            cr = consistent_rotations(aa.axis[b], aa.theta[b], ext.edges, dual=ext.dual)
            ts.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        full = ext(verts[b]).f[0]
        tfull = time.perf_counter() - t0
        dr = np.abs(full - principal[b - 1]).max()
        line = (f"{name}, {kind}: consistency median {np.median(ts):.3f} s, max {np.max(ts):.3f} s ({repeat} runs, 1 thread); "
                f"whole features {tfull:.3f} s; axis objective fast {cr.axis_cost:.0f}")
        if exact:
            sigma = axis_edge_signs(aa.axis[b], ext.edges)
            t0 = time.perf_counter()
            ex = tjoin_signs(sigma, ext.dual, 0, len(verts[0]), "exact")
            line += f", exact {axis_objective(ex, sigma, ext.edges)} ({time.perf_counter() - t0:.1f} s)"
        line += f"; max |f - principal logs| {dr:.1e} (max angle {aa.theta[b].max():.2f} rad)"
        print(line)


def roundtrip_report(name: str, verts: np.ndarray, faces: np.ndarray) -> None:
    """MED (mm, translation removed) of mesh -> f -> mesh, first mesh the reference, for both weightings."""
    from bodydata.features.acap import AcapExtractor
    from bodydata.features.reconstruct import AcapReconstructor

    for w in ("acap", "cotangent"):
        f = AcapExtractor(verts[0], faces, weighting=w)(verts).f
        out = AcapReconstructor(verts[0], faces, weighting=w, device="cpu")(f)
        a = out - out.mean(-2, keepdims=True)
        b = verts - verts.mean(-2, keepdims=True)
        med = 1000 * np.linalg.norm(a - b, axis=-1).mean(-1)
        print(f"round trip {name}, weighting={w}: MED over {len(med) - 1} deformed meshes mean {med[1:].mean():.3f} mm, "
              f"median {np.median(med[1:]):.3f} mm, max {med[1:].max():.3f} mm (reference mesh itself {med[0]:.1e} mm)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-gap", action="store_true")
    ap.add_argument("--scape", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/scape/simplified_2161"))
    ap.add_argument("--time-limit", type=float, default=120.0, help="HiGHS limit per program (the C++ uses 120 s)")
    ap.add_argument("--data", default=None, help="npz with posed bodies 'vertices' (B, n, 3) and 'faces' instead of "
                                                 "posing anny here (implies --no-gap); --save-data writes one")
    ap.add_argument("--save-data", default=None)
    ap.add_argument("--roundtrip-only", action="store_true", help="only the round-trip MED figures")
    args = ap.parse_args()
    if args.data:
        with np.load(args.data) as z:
            time_features(z["vertices"], z["faces"], args.repeat)
        return
    verts, faces = anny_bodies("notoes")
    if args.save_data:
        np.savez(args.save_data, vertices=verts, faces=faces)
        return
    scape = Path(args.scape)
    scape_set = None
    if scape.is_dir():
        from bodydata.mesh import read_mesh

        ms = [read_mesh(scape / f"{k}.obj") for k in range(1, 72)]
        scape_set = (np.stack([m.vertices for m in ms]), ms[0].faces)
    if args.roundtrip_only:
        if scape_set is not None:
            roundtrip_report("SCAPE simplified (2,161 v, 71 poses)", *scape_set)
        roundtrip_report("anny notoes_collapse10pc (1,229 v)", *anny_bodies("notoes_collapse10pc"))
        roundtrip_report("anny notoes (12,272 v)", verts, faces)
        return
    time_features(verts, faces, args.repeat)
    near_identity_report("anny notoes_collapse10pc (1,229 v)", *near_identity_bodies("notoes_collapse10pc"),
                         args.repeat, exact=not args.no_gap)
    near_identity_report("anny notoes (12,272 v)", *near_identity_bodies("notoes"), args.repeat, exact=False)
    if args.no_gap:
        return
    lite = anny_bodies("notoes_collapse10pc")
    gap_report("anny notoes_collapse10pc (1,229 v)", *lite, args.time_limit)
    gap_report("anny notoes (12,272 v)", verts, faces, args.time_limit)
    if scape_set is not None:
        gap_report("SCAPE simplified (2,161 v)", *scape_set, args.time_limit)
    else:
        print(f"SCAPE folder {scape} absent: no SCAPE gap figures")


if __name__ == "__main__":
    main()
